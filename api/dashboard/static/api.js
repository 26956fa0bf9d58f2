// Calls to the Kouan API under /api/v1, with the bearer token and the page's language.
"use strict";

const TOKEN_KEY = "kouan.token";

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Parse one server-sent event block ("event:" and "data:" lines); comments are skipped.
function dispatchEvent(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return;
  try {
    onEvent(name, JSON.parse(data.join("\n")));
  } catch (error) {
    onEvent(name, data.join("\n"));
  }
}

const api = {
  token: sessionStorage.getItem(TOKEN_KEY),
  onUnauthorized: () => {},

  async login(username, password) {
    const body = new URLSearchParams({ grant_type: "password", username, password });
    const response = await fetch("/api/v1/auth/token", {
      method: "POST",
      headers: { "Accept-Language": i18n.acceptLanguage() },
      body,
    });
    const document = await this._json(response);
    if (!response.ok) {
      throw new ApiError(response.status, document.code || "login_failed", document.message || i18n.t("auth.failed"));
    }
    this.token = document.access_token;
    sessionStorage.setItem(TOKEN_KEY, this.token);
  },

  logout() {
    this.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
  },

  async request(method, path, params, body) {
    const url = new URL(path, location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    const headers = { "Accept-Language": i18n.acceptLanguage(), Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";

    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const document = await this._json(response);
    if (response.status === 401) {
      this.onUnauthorized();
    }
    if (!response.ok) {
      throw new ApiError(response.status, document.code || `http_${response.status}`, document.message || response.statusText);
    }
    return document;
  },

  get(path, params) {
    return this.request("GET", path, params);
  },

  post(path, body) {
    return this.request("POST", path, undefined, body);
  },

  // Follow next_cursor until the list ends or maxPages pages have been read.
  async listAll(path, params, maxPages = 20) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < maxPages; page += 1) {
      const document = await this.get(path, { ...params, limit: 500, cursor });
      items.push(...(document.items || []));
      cursor = document.next_cursor;
      if (!cursor) return { items, cursor: null, complete: true };
    }
    return { items, cursor, complete: false };
  },

  // Read the server-sent events of GET /api/v1/stream through fetch, because
  // EventSource cannot send the bearer token. Calls onEvent(name, data) per event
  // and returns when the server ends the stream; abort with signal.
  async stream(params, onEvent, signal) {
    const url = new URL("/api/v1/stream", location.origin);
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${this.token}`, Accept: "text/event-stream", "Accept-Language": i18n.acceptLanguage() },
      signal,
    });
    if (response.status === 401) this.onUnauthorized();
    if (!response.ok) throw new ApiError(response.status, `http_${response.status}`, response.statusText);

    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // Events end with a blank line; sse-starlette separates lines with CRLF. A CR at
      // the end of a chunk waits for the next chunk, which may start with its LF.
      const complete = buffer.endsWith("\r") ? buffer.slice(0, -1) : buffer;
      const rest = buffer.slice(complete.length);
      const blocks = complete.replace(/\r\n?/g, "\n").split("\n\n");
      buffer = blocks.pop() + rest;
      for (const block of blocks) dispatchEvent(block, onEvent);
    }
  },

  async _json(response) {
    try {
      return await response.json();
    } catch (error) {
      return {};
    }
  },

  // Endpoints, in one place so that a change of path touches one line.
  alerts: (params) => api.get("/api/v1/alerts", params),
  acknowledgeAlert: (id, reason) => api.post(`/api/v1/alerts/${encodeURIComponent(id)}/acknowledge`, { reason }),
  resolveAlert: (id, reason) => api.post(`/api/v1/alerts/${encodeURIComponent(id)}/resolve`, { reason }),
  decisions: (params) => api.get("/api/v1/decisions", params),
  overrideDecision: (id, reason) => api.post(`/api/v1/decisions/${encodeURIComponent(id)}/override`, { reason }),
  container: (number, params) => api.get(`/api/v1/containers/${encodeURIComponent(number)}`, params),
  searchContainers: (params) => api.get("/api/v1/containers", params),
  timeline: (number, params) => api.get(`/api/v1/containers/${encodeURIComponent(number)}/timeline`, params),
  declaration: (number) => api.get(`/api/v1/declarations/${encodeURIComponent(number)}`),
  lanes: (params) => api.get("/api/v1/lanes", params),
  devices: (params) => api.get("/api/v1/devices", params),
  statistics: (params) => api.get("/api/v1/statistics", params),
};
