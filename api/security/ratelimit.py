"""Sliding-window request limits, kept in the API process's memory.

NOTE: each API process counts on its own, so N processes behind one address allow
N times the configured rate. A shared store (Redis, the database) would remove that.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

from api.errors import ApiError

WINDOW_S = 60.0
# Callers tracked at most; the least recently seen is forgotten first.
MAX_TRACKED_KEYS = 50_000


class RateLimited(ApiError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            429,
            "rate_limited",
            f"Too many requests; retry after {retry_after_s} s.",
            f"请求过于频繁，请在 {retry_after_s} 秒后重试。",
            headers={"Retry-After": str(retry_after_s)},
        )


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_s: float = WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()
        self.rejected = 0

    def check(self, key: str) -> None:
        """Count one request for ``key``; raise RateLimited when the window is full."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
                if len(self._hits) > MAX_TRACKED_KEYS:
                    self._hits.popitem(last=False)
            self._hits.move_to_end(key)

            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                self.rejected += 1
                retry_after = max(1, int(hits[0] + self.window_s - now) + 1)
                raise RateLimited(retry_after)
            hits.append(now)
