"""Prometheus metrics served at /metrics.

Two sources: counters and histograms of this API process (requests, human actions),
and gauges read from the database at scrape time for what the collector processes
do (ingest, quarantine, decisions, alerts, devices). The collector keeps its own
counters in memory only, so the database is the one place every collector's work
is visible. Database readings are cached for ``metrics_cache_s`` seconds and cover
only the sites of the caller.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from psycopg_pool import ConnectionPool

REQUEST_SECONDS = Histogram(
    "kouan_api_request_duration_seconds",
    "API request duration by method, route template and status code",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,
)
ALERT_ACTIONS = Counter(
    "kouan_api_alert_actions", "Alerts acknowledged or resolved through the API", ["action"], registry=None
)
OVERRIDES = Counter(
    "kouan_api_overrides", "Gate holds overridden by a customs officer", ["published"], registry=None
)
DECLARATION_WRITES = Counter(
    "kouan_api_declaration_writes", "Declaration writes by outcome", ["outcome"], registry=None
)
STREAM_CLIENTS = Gauge("kouan_api_stream_clients", "Live streams open in this process", registry=None)

PROCESS_METRICS = (REQUEST_SECONDS, ALERT_ACTIONS, OVERRIDES, DECLARATION_WRITES, STREAM_CLIENTS)
WINDOW_S = 300


class DatabaseMetrics:
    """Gauges and counters read from the database for a set of sites."""

    def __init__(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        self.rows = rows

    def collect(self) -> Iterable[Metric]:
        stored = GaugeMetricFamily(
            "kouan_ingest_events_recent", f"Events stored in the last {WINDOW_S} s", labels=["site"]
        )
        age = GaugeMetricFamily(
            "kouan_ingest_last_stored_age_seconds",
            f"Seconds since the site's latest stored event (sites with events in the last {WINDOW_S} s)",
            labels=["site"],
        )
        for site, count, seconds in self.rows["ingest"]:
            stored.add_metric([site], count)
            age.add_metric([site], seconds)

        quarantined = CounterMetricFamily(
            "kouan_quarantine_messages",
            "Messages quarantined, by site and reason code",
            labels=["site", "reason"],
        )
        for site, reason, count in self.rows["quarantine"]:
            quarantined.add_metric([site, reason], count)

        decisions = GaugeMetricFamily(
            "kouan_decisions_last_hour",
            "Gate decisions issued in the last hour",
            labels=["site", "lane", "decision"],
        )
        for site, lane, decision, count in self.rows["decisions"]:
            decisions.add_metric([site, lane, decision], count)

        alerts = GaugeMetricFamily(
            "kouan_alerts_unresolved",
            "Open and acknowledged alerts",
            labels=["site", "rule", "severity", "status"],
        )
        for site, rule, severity, status, count in self.rows["alerts"]:
            alerts.add_metric([site, rule, severity, status], count)

        outbox = GaugeMetricFamily(
            "kouan_device_outbox_depth",
            "Outbox depth in the device's latest status",
            labels=["site", "device"],
        )
        offset = GaugeMetricFamily(
            "kouan_device_clock_offset_ms",
            "Received minus sent time of the device's latest event, milliseconds",
            labels=["site", "device"],
        )
        for site, device, depth, offset_ms in self.rows["devices"]:
            if depth is not None:
                outbox.add_metric([site, device], depth)
            if offset_ms is not None:
                offset.add_metric([site, device], offset_ms)

        yield from (stored, age, quarantined, decisions, alerts, outbox, offset)


QUERIES = {
    "ingest": f"""
        SELECT site_id, count(*), extract(epoch FROM now() - max(stored_at))
        FROM events WHERE site_id = ANY(%(sites)s) AND stored_at > now() - interval '{WINDOW_S} seconds'
        GROUP BY site_id ORDER BY site_id
    """,
    # The quarantined message's site is the third level of its topic (kouan/v1/{site}/...).
    # NOTE: this counts the whole quarantine table on each uncached scrape. The table
    # has no site column to index, so a flood of bad messages makes scrapes slower.
    "quarantine": """
        SELECT split_part(topic, '/', 3) AS site, reason_code, count(*)
        FROM quarantine WHERE split_part(topic, '/', 3) = ANY(%(sites)s)
        GROUP BY 1, 2 ORDER BY 1, 2
    """,
    "decisions": """
        SELECT site_id, lane_id, decision, count(*) FROM gate_decisions
        WHERE site_id = ANY(%(sites)s) AND issued_at > now() - interval '1 hour'
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    """,
    "alerts": """
        SELECT site_id, rule_code, severity, status, count(*) FROM alerts
        WHERE site_id = ANY(%(sites)s) AND status <> 'resolved'
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    """,
    "devices": """
        SELECT site_id, device_id,
               CASE WHEN jsonb_typeof(status -> 'outbox_depth') = 'number'
                    THEN (status ->> 'outbox_depth')::numeric END,
               clock_offset_ms
        FROM devices WHERE site_id = ANY(%(sites)s)
        ORDER BY 1, 2 LIMIT 10000
    """,
}


class MetricsSource:
    def __init__(self, pool: ConnectionPool, cache_s: float) -> None:
        self.pool = pool
        self.cache_s = cache_s
        self._cache: dict[tuple[str, ...], tuple[float, dict[str, list[tuple[Any, ...]]]]] = {}
        self._lock = threading.Lock()

    def _read(self, sites: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
        with self._lock:
            cached = self._cache.get(sites)
            if cached and time.monotonic() - cached[0] < self.cache_s:
                return cached[1]

        with self.pool.connection() as conn:
            rows = {
                name: conn.execute(sql, {"sites": list(sites)}).fetchall() for name, sql in QUERIES.items()
            }
        with self._lock:
            if len(self._cache) > 100:
                self._cache.clear()
            self._cache[sites] = (time.monotonic(), rows)
        return rows

    def render(self, sites: Iterable[str]) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        for metric in PROCESS_METRICS:
            registry.register(metric)
        registry.register(DatabaseMetrics(self._read(tuple(sorted(sites)))))  # type: ignore[arg-type]
        return generate_latest(registry)
