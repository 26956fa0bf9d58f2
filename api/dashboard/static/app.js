// The dashboard's views. Plain DOM, no framework: every value from the API is
// inserted as text, never as HTML.
"use strict";

const SITE_KEY = "kouan.site";
// Views refresh at this interval; the live stream refreshes them sooner on a change.
const POLL_INTERVAL_MS = 15000;
const LIVE_REFRESH_DELAY_MS = 500;
const LIVE_RETRY_MS = 5000;
// Visits shown in the overview's live list.
const LIVE_PASSAGES = 12;
const SEVERITIES = ["critical", "warning", "info"];
const TIMELINE_PAGES = 5;
const ALERT_PAGE = 50;

const state = {
  site: localStorage.getItem(SITE_KEY) || "",
  view: "overview",
  timezone: "Asia/Shanghai",
  pollTimer: null,
  chart: null,
  permissions: new Set(),
  alertRows: [],
  alertCursor: null,
  live: null,
  liveRefresh: null,
  renderId: 0,
};

// ---------------------------------------------------------------- DOM helpers

function $(id) {
  return document.getElementById(id);
}

// Build an element: attributes from attrs (on* keys become listeners), children as nodes or text.
function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

function badge(text, kind) {
  return h("span", { class: `badge ${kind || ""}` }, text);
}

// Fill a <table> with a header row from columns [{title, cell(row)}] and one row per item.
function fillTable(table, columns, rows, options = {}) {
  table.replaceChildren();
  table.append(h("thead", null, h("tr", null, columns.map((column) => h("th", null, i18n.t(column.title))))));
  const body = h("tbody");
  if (!rows.length) {
    body.append(h("tr", null, h("td", { class: "empty", colspan: columns.length }, options.empty || i18n.t("common.empty"))));
  }
  for (const row of rows) {
    const attrs = options.rowAttrs ? options.rowAttrs(row) : {};
    body.append(h("tr", attrs, columns.map((column) => h("td", { class: column.class }, column.cell(row)))));
  }
  table.append(body);
}

// Format a timestamp as "2026-12-05 04:44:35" in the site's time zone, in both languages.
function formatTime(value) {
  if (!value) return "–";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: state.timezone,
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).formatToParts(date);
  const part = (type) => parts.find((item) => item.type === type).value;
  return `${part("year")}-${part("month")}-${part("day")} ${part("hour")}:${part("minute")}:${part("second")}`;
}

function showBanner(message) {
  const banner = $("banner");
  banner.textContent = message;
  banner.hidden = !message;
}

function containerLink(number) {
  if (!number) return "–";
  return h("a", { href: `#/containers/${encodeURIComponent(number)}`, class: "mono", dataset: { testid: "container-link" } }, number);
}

// ---------------------------------------------------------------- sign-in and sites

function showLogin(message) {
  stopPolling();
  document.body.classList.add("signed-out");
  $("main").hidden = true;
  $("login").hidden = false;
  const error = $("login-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("login-username").focus();
}

async function submitLogin(event) {
  event.preventDefault();
  const error = $("login-error");
  error.hidden = true;
  try {
    await api.login($("login-username").value.trim(), $("login-password").value);
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
    return;
  }
  $("login-password").value = "";
  startSignedIn();
}

async function startSignedIn() {
  let me;
  try {
    me = await api.get("/api/v1/auth/me");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showLogin(error.message);
    return;
  }
  state.permissions = new Set(me.permissions || []);
  applyPermissions();
  $("user-name").textContent = me.name;
  fillSites(me.sites || []);
  document.body.classList.remove("signed-out");
  $("login").hidden = true;
  $("main").hidden = false;
  startLive();
  route();
}

// ---------------------------------------------------------------- live stream

// Follow the site's visit and alert changes; the overview and the alert desk refresh
// on each burst of changes. The stream reconnects after LIVE_RETRY_MS when it ends.
function startLive() {
  stopLive();
  const controller = new AbortController();
  state.live = controller;
  setLive("connecting");
  api.stream({ site: state.site }, onLiveEvent, controller.signal)
    .catch((error) => {
      if (error.name !== "AbortError") console.warn("live stream failed", error);
    })
    .finally(() => {
      if (state.live !== controller) return;
      setLive("offline");
      setTimeout(() => {
        if (state.live === controller && api.token) startLive();
      }, LIVE_RETRY_MS);
    });
}

function stopLive() {
  if (state.live) state.live.abort();
  state.live = null;
}

function onLiveEvent(name) {
  if (name === "ready") setLive("online");
  if (name !== "visit" && name !== "alert") return;
  clearTimeout(state.liveRefresh);
  state.liveRefresh = setTimeout(refreshLiveView, LIVE_REFRESH_DELAY_MS);
}

function refreshLiveView() {
  if (state.view === "overview") refreshOverview().catch(reportError);
  if (state.view === "alerts" && !$("reason-dialog").open && state.alertRows.length <= ALERT_PAGE) {
    renderAlertTable().catch(reportError);
  }
}

function setLive(status) {
  const indicator = $("live");
  indicator.dataset.status = status;
  indicator.textContent = i18n.t(`live.${status}`);
}

function may(permission) {
  return state.permissions.has(permission);
}

// Hide what the role may not read, so a view never fails on a 403 it could predict.
function applyPermissions() {
  for (const element of document.querySelectorAll("[data-permission]")) {
    element.hidden = !may(element.dataset.permission);
  }
}

// The sites come from the caller's account; the last chosen one is kept.
function fillSites(sites) {
  const select = $("site-select");
  select.replaceChildren(...sites.map((site) => h("option", { value: site }, site)));
  if (!sites.includes(state.site)) state.site = sites[0] || "";
  select.value = state.site;
}

// ---------------------------------------------------------------- routing

const VIEWS = {
  overview: renderOverview,
  containers: renderContainers,
  declarations: renderDeclarations,
  alerts: renderAlerts,
  devices: renderDevices,
};

function route() {
  if (!api.token) {
    showLogin();
    return;
  }
  const [name, argument] = location.hash.replace(/^#\/?/, "").split("/");
  state.view = VIEWS[name] ? name : "overview";
  for (const view of Object.keys(VIEWS)) {
    $(`view-${view}`).hidden = view !== state.view;
  }
  for (const link of document.querySelectorAll(".tabs a")) {
    link.classList.toggle("active", link.dataset.view === state.view);
  }
  stopPolling();
  showBanner("");
  // data-ready names the view once its first render finished, for people and tests alike.
  const renderId = ++state.renderId;
  $("main").dataset.ready = "";
  VIEWS[state.view](argument ? decodeURIComponent(argument) : null)
    .then(() => {
      if (renderId === state.renderId) $("main").dataset.ready = state.view;
    })
    .catch(reportError);
}

function reportError(error) {
  if (error instanceof ApiError && error.status === 401) return;
  showBanner(`${i18n.t("common.unavailable")}: ${error.message}`);
}

function stopPolling() {
  if (state.pollTimer) clearInterval(state.pollTimer);
  state.pollTimer = null;
}

// ---------------------------------------------------------------- overview

async function renderOverview() {
  await refreshOverview();
  state.pollTimer = setInterval(() => refreshOverview().catch(reportError), POLL_INTERVAL_MS);
}

async function refreshOverview() {
  const parts = [renderOverviewLanes(), renderPassages()];
  if (may("alerts:read")) parts.push(renderSeverityCounts());
  if (may("statistics:read")) parts.push(renderThroughput());
  await Promise.all(parts);
}

async function renderSeverityCounts() {
  const { items } = await api.listAll("/api/v1/alerts", { site: state.site, status: "open" }, 10);
  const counts = Object.fromEntries(SEVERITIES.map((severity) => [severity, 0]));
  for (const alert of items) counts[alert.severity] = (counts[alert.severity] || 0) + 1;
  $("severity-counts").replaceChildren(
    ...SEVERITIES.map((severity) =>
      h("a", { class: `severity ${severity}`, href: "#/alerts", dataset: { testid: `severity-${severity}` } },
        h("b", null, counts[severity]), i18n.t(`severity.${severity}`))),
  );
}

async function renderOverviewLanes() {
  const document = await api.lanes({ site: state.site });
  fillTable($("overview-lanes"), laneColumns(), document.items || []);
}

function laneColumns() {
  return [
    { title: "col.lane", cell: (lane) => h("span", { class: "mono" }, lane.lane_id) },
    { title: "col.direction", cell: (lane) => i18n.label("direction", lane.direction) },
    { title: "col.mode", cell: (lane) => badge(i18n.label("mode", lane.mode), lane.mode) },
    { title: "col.mode_reason", cell: (lane) => lane.mode_reason || "–" },
    { title: "col.devices_ok", cell: (lane) => badge(`${lane.devices_ok} / ${lane.devices}`, lane.devices_ok < lane.devices ? "warning" : "ok") },
    { title: "col.open_alerts", cell: (lane) => (lane.open_alerts ? badge(lane.open_alerts, "critical") : "0") },
    { title: "col.updated_at", cell: (lane) => formatTime(lane.updated_at) },
  ];
}

// Passages per lane per hour (stacked bars) with alerts and holds per hour (lines),
// bucketed by the API in the site's time zone, for the last 24 hours.
async function renderThroughput() {
  const statistics = await api.statistics({ site: state.site, bucket: "hour" });
  state.timezone = statistics.timezone || state.timezone;
  if (typeof echarts === "undefined") return;

  const container = $("chart-throughput");
  if (!state.chart || state.chart.getDom() !== container) {
    state.chart = echarts.init(container, null, { renderer: "canvas" });
  }
  const items = statistics.items || [];
  const hours = [...new Set(items.map((item) => item.bucket_start))].sort();
  const lanes = [...new Set(items.filter((item) => item.lane_id && item.passages).map((item) => item.lane_id))].sort();
  const sum = (hour, field, lane) => items
    .filter((item) => item.bucket_start === hour && (lane === undefined || item.lane_id === lane))
    .reduce((total, item) => total + item[field], 0);

  const series = lanes.map((lane) => ({
    name: lane, type: "bar", stack: "passages", data: hours.map((hour) => sum(hour, "passages", lane)),
  }));
  series.push(
    { name: i18n.t("chart.alerts"), type: "line", data: hours.map((hour) => sum(hour, "alerts")) },
    { name: i18n.t("chart.holds"), type: "line", data: hours.map((hour) => sum(hour, "decisions_hold")) },
  );
  state.chart.setOption({
    textStyle: { fontFamily: getComputedStyle(document.body).fontFamily },
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 44, right: 16, top: 36, bottom: 28 },
    xAxis: { type: "category", data: hours.map(formatHour) },
    yAxis: { type: "value", minInterval: 1, name: i18n.t("overview.per_hour") },
    series,
  }, true);
}

function formatHour(value) {
  return new Intl.DateTimeFormat("zh-CN", { timeZone: state.timezone, hour: "2-digit", minute: "2-digit", hour12: false })
    .format(new Date(value));
}

// The visits with the latest activity: each row is the container's latest gate or scanner event.
async function renderPassages() {
  const document = await api.searchContainers({ site: state.site, limit: LIVE_PASSAGES });
  fillTable($("overview-passages"), [
    { title: "col.time", cell: (visit) => formatTime(visit.last_event_at) },
    { title: "col.container", cell: (visit) => containerLink(visit.container_number) },
    { title: "col.status", cell: (visit) => i18n.label("visit", visit.status) },
    { title: "col.lane", cell: (visit) => h("span", { class: "mono" }, visit.exit_lane || visit.entry_lane || "–") },
    { title: "containers.truck", cell: (visit) => visit.truck_plate || "–" },
    { title: "col.customs_status", cell: (visit) => badge(i18n.label("customs", visit.customs_status), visit.released ? "ok" : "") },
    { title: "col.flags", cell: (visit) => (visit.flags || []).map((flag) => badge(i18n.label("flag", flag), "warning")) },
  ], document.items || []);
}

// ---------------------------------------------------------------- containers

async function renderContainers(number) {
  $("container-detail").hidden = !number;
  $("container-results-card").hidden = Boolean(number);
  if (!number) {
    const query = $("container-query").value.trim();
    if (query) await searchContainers(query);
    else fillTable($("container-results"), containerColumns(), []);
    return;
  }
  $("container-query").value = number;
  await showContainer(number);
}

function containerColumns() {
  return [
    { title: "col.container", cell: (item) => containerLink(item.container_number) },
    { title: "col.site", cell: (item) => item.site_id || "–" },
    { title: "col.status", cell: (item) => i18n.label("visit", item.status) },
    { title: "col.customs_status", cell: (item) => i18n.label("customs", item.customs_status) },
    { title: "col.declaration", cell: (item) => item.declaration_number || "–" },
    { title: "col.last_event_at", cell: (item) => formatTime(item.last_event_at) },
  ];
}

// Search by the start of a number (owner code, then serial digits). Anything else,
// such as a raw OCR read with spaces or brackets, is looked up as a whole number,
// which the API repairs and validates.
async function searchContainers(query) {
  let items = [];
  const prefix = query.toUpperCase().replace(/[\s\-]/g, "");
  if (/^[A-Z]{1,4}[0-9]{0,7}$/.test(prefix)) {
    const document = await api.searchContainers({ site: state.site, number_prefix: prefix, limit: 50 });
    items = document.items || [];
  } else {
    const found = await lookUpContainer(query);
    if (found) items = [{ ...found.current, container_number: found.container_number, declaration_number: found.declaration?.declaration_number }];
  }
  fillTable($("container-results"), containerColumns(), items, {
    rowAttrs: (item) => ({
      class: "clickable",
      dataset: { testid: "container-result", number: item.container_number },
      onclick: (event) => {
        if (event.target.tagName !== "A") location.hash = `#/containers/${encodeURIComponent(item.container_number)}`;
      },
    }),
  });
}

async function lookUpContainer(number) {
  try {
    return await api.container(number, { site: state.site });
  } catch (error) {
    if (error instanceof ApiError && [404, 422].includes(error.status)) {
      showBanner(error.message);
      return null;
    }
    throw error;
  }
}

async function showContainer(number) {
  const container = await lookUpContainer(number);
  if (!container) {
    $("container-detail").hidden = true;
    return;
  }
  const visit = container.current;
  $("detail-number").textContent = container.container_number;
  fillFacts($("detail-facts"), [
    ["col.status", i18n.label("visit", visit.status)],
    ["col.customs_status", i18n.label("customs", visit.customs_status)],
    ["col.declaration", container.declaration
      ? h("a", { href: `#/declarations/${container.declaration.declaration_number}`, class: "mono" }, container.declaration.declaration_number)
      : "–"],
    ["containers.truck", visit.truck_plate || "–"],
    ["containers.lanes", `${visit.entry_lane || "–"} / ${visit.exit_lane || "–"}`],
    ["col.seals", (visit.seal_numbers || []).join(", ") || "–"],
    ["col.weight", visit.gross_weight_kg ?? "–"],
    ["col.size_type", visit.size_type || "–"],
    ["col.entered", formatTime(visit.entered_at)],
    ["col.scanned", formatTime(visit.scanned_at)],
    ["col.exited", formatTime(visit.exited_at)],
    ["col.flags", (visit.flags || []).map((flag) => badge(i18n.label("flag", flag), "warning"))],
    ["containers.previous_visits", container.previous_visits],
  ]);
  $("container-detail").hidden = false;
  await renderTimeline(container.container_number);
}

function fillFacts(list, facts) {
  list.replaceChildren(...facts.flatMap(([key, value]) => [h("dt", null, i18n.t(key)), h("dd", null, value)]));
}

// Show the latest visit's events (at most TIMELINE_PAGES pages) and the alerts of that visit.
async function renderTimeline(number) {
  const items = [];
  let alerts = [];
  let cursor = null;
  for (let page = 0; page < TIMELINE_PAGES; page += 1) {
    const document = await api.timeline(number, { site: state.site, cursor, limit: 200 });
    items.push(...(document.items || []));
    if (page === 0) alerts = document.alerts || [];
    cursor = document.next_cursor;
    if (!cursor) break;
  }
  const list = $("timeline");
  list.replaceChildren();
  if (!items.length) list.append(h("li", { class: "muted" }, i18n.t("common.empty")));
  for (const item of items) list.append(timelineEntry(item));
  fillTable($("detail-alerts"), alertColumns(false), alerts);
}

function timelineEntry(item) {
  const reads = collectReads(item.payload || {}).map((read) => ({ ...read, normalised: normalisedRead(item.reads || {}, read.path) }));
  const images = reads.filter((read) => read.image_ref).map((read) => read.image_ref);
  for (const ref of item.evidence?.image_refs || []) images.push(ref);
  if (item.payload?.image_ref) images.push(item.payload.image_ref);

  return h("li", { id: `event-${item.event_id}`, dataset: { testid: "timeline-entry", kind: item.kind } },
    h("div", null,
      h("span", { class: "when" }, formatTime(item.occurred_at)),
      h("span", { class: "what" }, i18n.label("kind", item.kind)),
      " ", item.lane_id ? badge(item.lane_id) : null,
      " ", h("span", { class: "muted mono" }, `${item.device_id || ""} #${item.seq ?? ""}`)),
    item.decision ? h("div", null, badge(i18n.label("decision", item.decision.decision || item.decision), item.decision.decision || item.decision)) : null,
    reads.length ? readsTable(reads) : null,
    h("div", { class: "evidence muted" },
      `${i18n.t("containers.event")}: `, h("span", { class: "mono" }, item.event_id || "–"),
      images.length ? [" · ", `${i18n.t("containers.image")}: `, images.map((ref) => imageRef(ref))] : null),
  );
}

function imageRef(ref) {
  const value = String(ref);
  // Only same-origin paths become links: the page never loads anything from elsewhere.
  if (value.startsWith("/")) return h("a", { href: value, target: "_blank", rel: "noopener", class: "mono" }, value);
  return h("span", { class: "mono", dataset: { testid: "image-ref" } }, value, " ");
}

// Find the collector's normalised record (the events' "derived" column) for the read
// at path, where list positions count from 1, and return its value or error code.
function normalisedRead(derived, path) {
  const aliases = { container_number: "containers[1]", seal_number: "seal" };
  let node = derived;
  for (const step of (aliases[path] || path).split(".")) {
    const match = /^([a-z_]+)(?:\[(\d+)\])?$/.exec(step);
    if (!match || !node || typeof node !== "object") return null;
    // A container's number read is normalised on the container's own record.
    if (match[1] === "container_number" && node.value !== undefined) continue;
    node = node[match[1]];
    if (match[2] !== undefined) node = Array.isArray(node) ? node[Number(match[2]) - 1] : null;
  }
  if (!node || typeof node !== "object") return null;
  return { value: node.value, valid: node.valid, corrected: node.corrected, error: node.error || node.reason };
}

// Name a read by its place in the payload: "containers[1].seals[2]" becomes "箱 1 · 施封号 2".
function readLabel(path) {
  return path.split(".").map((step) => {
    const match = /^([a-z_]+)(?:\[(\d+)\])?$/.exec(step);
    if (!match) return step;
    const name = i18n.label("read", match[1]);
    return match[2] === undefined ? name : `${name} ${match[2]}`;
  }).join(" · ");
}

// Every {raw, source} object inside a payload is one sensor read; return them with their path.
function collectReads(payload, path = "") {
  const reads = [];
  if (Array.isArray(payload)) {
    payload.forEach((value, index) => reads.push(...collectReads(value, `${path}[${index + 1}]`)));
  } else if (payload && typeof payload === "object") {
    if (typeof payload.raw === "string" && payload.source) {
      reads.push({ path, ...payload });
    }
    for (const [key, value] of Object.entries(payload)) {
      if (value && typeof value === "object") reads.push(...collectReads(value, path ? `${path}.${key}` : key));
    }
  }
  return reads;
}

function readsTable(reads) {
  const table = h("table", { class: "reads", dataset: { testid: "reads" } });
  fillTable(table, [
    { title: "col.field", cell: (read) => h("span", { title: read.path }, readLabel(read.path)) },
    { title: "col.raw", cell: rawCell },
    { title: "col.value", cell: normalisedCell },
    { title: "col.source", cell: (read) => badge(i18n.label("source", read.source), "info") },
    { title: "col.confidence", cell: (read) => (read.confidence === undefined || read.confidence === null ? "–" : `${Math.round(read.confidence * 100)}%`) },
  ], reads);
  return table;
}

// Show the raw text with each character that normalisation replaced marked, so an
// OCR confusion such as O read for 0 is visible even where the font draws them alike.
function rawCell(read) {
  const value = read.normalised?.value;
  const alphanumeric = /[0-9A-Za-z]/;
  const count = [...read.raw].filter((char) => alphanumeric.test(char)).length;
  if (!value || count !== value.length) return h("span", { class: "mono" }, read.raw);

  let index = 0;
  const nodes = [...read.raw].map((char) => {
    if (!alphanumeric.test(char)) return char;
    const expected = value[index];
    index += 1;
    return char.toUpperCase() === expected ? char : h("mark", { class: "diff", title: `${char} → ${expected}` }, char);
  });
  return h("span", { class: "mono", dataset: { testid: "raw-read" } }, nodes);
}

function normalisedCell(read) {
  const normalised = read.normalised;
  if (!normalised) return "–";
  if (normalised.valid === false) return badge(`${i18n.t("common.invalid")}: ${normalised.error || ""}`, "warning");
  return [
    h("span", { class: "mono" }, normalised.value ?? "–"),
    normalised.corrected ? [" ", badge(i18n.t("read.corrected"), "warning")] : null,
  ];
}

// ---------------------------------------------------------------- declarations

async function renderDeclarations(number) {
  $("declaration-detail").hidden = true;
  if (!number) return;
  $("declaration-query").value = number;
  let declaration;
  try {
    declaration = await api.declaration(number);
  } catch (error) {
    if (error instanceof ApiError && [404, 422].includes(error.status)) {
      showBanner(error.message);
      return;
    }
    throw error;
  }
  $("declaration-number").textContent = declaration.declaration_number;
  fillFacts($("declaration-facts"), [
    ["col.status", i18n.label("customs", declaration.status)],
    ["declarations.direction", i18n.t(`declarations.${declaration.direction}`)],
    ["declarations.consignee", `${declaration.consignee_name || "–"} ${declaration.consignee_code || ""}`],
    ["declarations.declared_at", formatTime(declaration.declared_at)],
    ["col.site", declaration.site_id],
    ["declarations.version", declaration.version],
  ]);
  renderCompleteness(declaration);
  fillTable($("declaration-containers"), [
    { title: "col.container", cell: (item) => containerLink(item.container_number) },
    { title: "col.status", cell: (item) => badge(i18n.label("visit", item.visit_status || "missing"), item.visit_status ? "ok" : "warning") },
    { title: "col.size_type", cell: (item) => item.size_type || "–" },
    { title: "col.seals", cell: (item) => (item.seal_numbers || []).join(", ") || "–" },
    { title: "col.weight", cell: (item) => item.gross_weight_kg ?? "–" },
    { title: "col.entered", cell: (item) => formatTime(item.entered_at) },
    { title: "col.scanned", cell: (item) => formatTime(item.scanned_at) },
    { title: "col.exited", cell: (item) => formatTime(item.exited_at) },
    { title: "col.flags", cell: (item) => (item.flags || []).map((flag) => badge(i18n.label("flag", flag), "warning")) },
  ], declaration.containers || []);
  $("declaration-detail").hidden = false;
}

function renderCompleteness(declaration) {
  const containers = declaration.containers || [];
  const total = containers.length;
  const counts = declaration.counts || {};
  const exited = counts.exited ?? containers.filter((item) => item.visit_status === "exited").length;
  const missing = counts.missing ?? containers.filter((item) => !item.visit_status).length;
  const arrived = counts.arrived ?? total - missing;
  const scanned = counts.scanned ?? containers.filter((item) => item.scanned_at).length;
  const share = (count) => `${total ? (100 * count) / total : 0}%`;

  $("declaration-completeness").replaceChildren(
    h("div", null, h("b", null, i18n.t("declarations.complete")), " ",
      i18n.t("declarations.summary", { arrived, total, exited, missing })),
    h("div", { class: "bar" },
      h("span", { class: "exited", style: `width:${share(exited)}` }),
      h("span", { class: "entered", style: `width:${share(Math.max(arrived - exited, 0))}` })),
    h("div", { class: "counts muted" },
      h("span", null, `${i18n.t("declarations.arrived")} ${arrived}`),
      h("span", null, `${i18n.t("declarations.scanned")} ${scanned}`),
      h("span", null, `${i18n.t("declarations.exited")} ${exited}`),
      h("span", null, `${i18n.t("declarations.missing")} ${missing}`)),
  );
}

// ---------------------------------------------------------------- alert desk

function alertColumns(withActions) {
  const columns = [
    { title: "col.severity", cell: (alert) => badge(i18n.label("severity", alert.severity), alert.severity) },
    { title: "col.rule", cell: (alert) => i18n.label("rule", alert.rule_code) },
    { title: "col.message", cell: alertMessage },
    { title: "col.container", cell: (alert) => containerLink(alert.container_number) },
    { title: "col.lane", cell: (alert) => alert.lane_id || alert.device_id || "–" },
    { title: "col.raised", cell: (alert) => [formatTime(alert.first_raised_at), h("br"), formatTime(alert.last_raised_at)] },
    { title: "col.occurrences", cell: (alert) => alert.occurrences },
    { title: "col.status", cell: (alert) => badge(i18n.label("status", alert.status), alert.status === "open" ? "critical" : "") },
    { title: "col.handled", cell: alertHandled },
  ];
  if (withActions && may("alerts:act")) columns.push({ title: "col.actions", cell: alertActions });
  return columns;
}

function alertMessage(alert) {
  const evidence = alert.evidence && Object.keys(alert.evidence).length
    ? h("details", null, h("summary", null, i18n.t("containers.evidence")),
      (alert.evidence.event_ids || []).map((eventId) => evidenceLink(alert, eventId)),
      h("pre", { class: "evidence-json" }, JSON.stringify(alert.evidence, null, 2)))
    : null;
  return [h("span", { dataset: { testid: "alert-message" } }, i18n.message(alert)), evidence];
}

// An event named in an alert's evidence: scroll to it on the timeline, opening the
// container's timeline first when it is not on screen.
function evidenceLink(alert, eventId) {
  return h("a", {
    href: alert.container_number ? `#/containers/${alert.container_number}` : "#/alerts",
    class: "evidence-link mono",
    onclick: (event) => {
      const entry = document.getElementById(`event-${eventId}`);
      if (!entry) return;
      event.preventDefault();
      entry.scrollIntoView({ block: "center" });
      entry.classList.add("highlight");
    },
  }, `${i18n.t("containers.event")} ${eventId.slice(0, 8)}`);
}

function alertHandled(alert) {
  const lines = [];
  if (alert.acknowledged_at) {
    lines.push(h("div", null, `${i18n.t("status.acknowledged")}: `,
      i18n.t("alerts.by", { who: alert.acknowledged_by || "–", when: formatTime(alert.acknowledged_at) })));
  }
  if (alert.resolved_at) {
    const text = alert.resolved_by
      ? i18n.t("alerts.by", { who: alert.resolved_by, when: formatTime(alert.resolved_at) })
      : i18n.t("alerts.auto_cleared");
    lines.push(h("div", null, `${i18n.t("status.resolved")}: `, text));
  }
  return lines.length ? lines : "–";
}

function alertActions(alert) {
  const buttons = [];
  if (alert.status === "open") {
    buttons.push(h("button", {
      type: "button", dataset: { testid: "alert-acknowledge", alertId: alert.alert_id },
      onclick: () => askReason("alerts.ack_title", alert, (reason) => api.acknowledgeAlert(alert.alert_id, reason)),
    }, i18n.t("alerts.acknowledge")));
  }
  if (alert.status !== "resolved") {
    buttons.push(" ", h("button", {
      type: "button", class: "danger", dataset: { testid: "alert-resolve", alertId: alert.alert_id },
      onclick: () => askReason("alerts.resolve_title", alert, (reason) => api.resolveAlert(alert.alert_id, reason)),
    }, i18n.t("alerts.resolve")));
  }
  return buttons;
}

async function renderAlerts() {
  await Promise.all([renderAlertTable(), may("decisions:read") ? renderDecisionTable() : null]);
  state.pollTimer = setInterval(() => {
    if (!$("reason-dialog").open && state.alertRows.length <= ALERT_PAGE) renderAlertTable().catch(reportError);
  }, POLL_INTERVAL_MS);
}

// Show the first ALERT_PAGE alerts of the filter; "more" appends the next page.
async function renderAlertTable(more = false) {
  const container = $("alert-container").value.trim().toUpperCase();
  const params = { site: state.site, status: $("alert-status").value, container_number: container, limit: ALERT_PAGE };
  if (more) params.cursor = state.alertCursor;
  const document = await api.alerts(params);
  state.alertRows = more ? [...state.alertRows, ...(document.items || [])] : document.items || [];
  state.alertCursor = document.next_cursor;
  fillTable($("alert-table"), alertColumns(true), state.alertRows, {
    rowAttrs: (alert) => ({ dataset: { testid: "alert-row", alertId: alert.alert_id, rule: alert.rule_code } }),
  });
  $("alert-more").hidden = !state.alertCursor;
}

async function renderDecisionTable() {
  const document = await api.decisions({ site: state.site, limit: 100 });
  const items = document.items || [];
  fillTable($("decision-table"), [
    { title: "col.issued_at", cell: (item) => formatTime(item.issued_at) },
    { title: "col.lane", cell: (item) => item.lane_id },
    { title: "col.containers", cell: (item) => (item.container_numbers || []).map((number) => [containerLink(number), " "]) },
    { title: "col.decision", cell: (item) => badge(i18n.label("decision", item.decision), item.decision) },
    { title: "col.reasons", cell: (item) => (item.reasons || []).map((reason) => h("div", null, i18n.message(reason))) },
    { title: "col.valid_until", cell: (item) => formatTime(item.valid_until) },
    { title: "col.issued_by", cell: (item) => item.issued_by || "Kouan" },
    { title: "col.actions", cell: decisionActions },
  ], items, { rowAttrs: (item) => ({ dataset: { testid: "decision-row", commandId: item.command_id } }) });
}

function decisionActions(item) {
  if (item.decision !== "hold") return "";
  if (item.overridden_by) return badge(i18n.t("decisions.overridden"), "ok");
  if (!may("decisions:override")) return "";
  return h("button", {
    type: "button", dataset: { testid: "decision-override" },
    onclick: () => askReason("decisions.override_title", item, (reason) => api.overrideDecision(item.command_id, reason)),
  }, i18n.t("decisions.override"));
}

// Open the reason dialog; submit calls action(reason) and refreshes the alert desk.
function askReason(titleKey, subject, action) {
  const dialog = $("reason-dialog");
  $("reason-title").textContent = i18n.t(titleKey);
  $("reason-subject").textContent = subject.alert_id
    ? `#${subject.alert_id} ${i18n.label("rule", subject.rule_code)} ${subject.container_number || subject.device_id || ""}`
    : `${subject.lane_id} ${(subject.container_numbers || []).join(", ")}`;
  $("reason-text").value = "";
  $("reason-error").hidden = true;
  dialog.pendingAction = action;
  dialog.showModal();
  $("reason-text").focus();
}

async function submitReason(event) {
  event.preventDefault();
  const dialog = $("reason-dialog");
  const reason = $("reason-text").value.trim();
  const error = $("reason-error");
  if (!reason) {
    error.textContent = i18n.t("action.reason_required");
    error.hidden = false;
    return;
  }
  $("reason-submit").disabled = true;
  let result;
  try {
    result = await dialog.pendingAction(reason);
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
    return;
  } finally {
    $("reason-submit").disabled = false;
  }
  dialog.close();
  // The override is stored, but the lane did not receive it: the officer must act at the lane.
  if (result && result.published === false) showBanner(i18n.t("decisions.not_published"));
  await Promise.all([renderAlertTable(), may("decisions:read") ? renderDecisionTable() : null]).catch(reportError);
}

// ---------------------------------------------------------------- devices and lanes

async function renderDevices() {
  await renderHealth();
  state.pollTimer = setInterval(() => renderHealth().catch(reportError), POLL_INTERVAL_MS);
}

async function renderHealth() {
  const [lanes, devices] = await Promise.all([api.lanes({ site: state.site }), api.devices({ site: state.site, limit: 500 })]);
  fillTable($("lane-table"), laneColumns(), lanes.items || []);
  fillTable($("device-table"), [
    { title: "col.device", cell: (device) => h("span", { class: "mono" }, device.device_id) },
    { title: "col.lane", cell: (device) => device.lane_id || "–" },
    { title: "col.kind_device", cell: (device) => i18n.label("devkind", device.kind) },
    { title: "col.health", cell: (device) => badge(i18n.label("health", device.health), device.health) },
    { title: "col.last_seen", cell: (device) => formatTime(device.last_seen_at) },
    { title: "col.last_seq", cell: (device) => device.last_seq ?? "–" },
    { title: "col.seq_gaps", cell: (device) => device.seq_gaps ?? "–" },
    { title: "col.clock_offset", cell: (device) => (device.clock_offset_ms === null || device.clock_offset_ms === undefined ? "–" : Math.round(device.clock_offset_ms)) },
    { title: "col.outbox", cell: outboxText },
    { title: "col.enabled", cell: (device) => i18n.t(device.enabled === false ? "no" : "yes") },
  ], devices.items || [], { rowAttrs: (device) => ({ dataset: { testid: "device-row", deviceId: device.device_id } }) });
}

function outboxText(device) {
  const status = device.status || {};
  const depth = device.outbox_depth ?? status.outbox_depth;
  if (depth === undefined || depth === null) return "–";
  const capacity = device.outbox_capacity ?? status.outbox_capacity;
  return capacity ? `${depth} / ${capacity}` : String(depth);
}

// ---------------------------------------------------------------- start

function switchLanguage() {
  i18n.set(i18n.lang === "zh" ? "en" : "zh");
  setLive($("live").dataset.status || "offline");
  if (!$("main").hidden) route();
}

function start() {
  i18n.applyStatic();
  api.onUnauthorized = () => {
    stopLive();
    api.logout();
    showLogin(i18n.t("auth.expired"));
  };
  $("login-form").addEventListener("submit", submitLogin);
  $("logout").addEventListener("click", () => {
    stopLive();
    api.logout();
    showLogin();
  });
  $("lang-toggle").addEventListener("click", switchLanguage);
  $("site-select").addEventListener("change", (event) => {
    state.site = event.target.value;
    localStorage.setItem(SITE_KEY, state.site);
    startLive();
    route();
  });
  $("container-search").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("container-query").value.trim();
    if (location.hash !== "#/containers") location.hash = "#/containers";
    else route();
  });
  $("declaration-search").addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/declarations/${encodeURIComponent($("declaration-query").value.trim())}`;
  });
  $("alert-status").addEventListener("change", () => renderAlertTable().catch(reportError));
  $("alert-refresh").addEventListener("click", () => renderAlertTable().catch(reportError));
  $("alert-more").addEventListener("click", () => renderAlertTable(true).catch(reportError));
  $("reason-form").addEventListener("submit", submitReason);
  $("reason-cancel").addEventListener("click", () => $("reason-dialog").close());
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => state.chart && state.chart.resize());

  if (api.token) startSignedIn();
  else showLogin();
}

document.addEventListener("DOMContentLoaded", start);
