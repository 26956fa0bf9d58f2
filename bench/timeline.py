"""Timeline queries against an events table filled in bulk to 1 M, 10 M and 100 M rows.

Rows are generated inside PostgreSQL (``INSERT ... SELECT generate_series``) at a
fixed rate of ``ROWS_PER_DAY`` with the newest row at the fill time, so a larger
table spans more days and more hypertable chunks, as it would at a real port whose
history grows. Each container appears in ``EVENTS_PER_CONTAINER`` consecutive rows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import numpy as np
import psycopg

FILL_SITE = "BENCH-FILL"
# About 6 events/s around the clock: a large container terminal's gates, scanners
# and seal readers together. At this rate 100 M rows are 184 days, the minimum
# retention for network logs under China's Cybersecurity Law.
ROWS_PER_DAY = 545_000
EVENTS_PER_CONTAINER = 4
FILL_STEP_ROWS = 1_000_000
QUERIES_PER_SIZE = 300

CONTAINER_TIMELINE_SQL = """
SELECT occurred_at, kind, device_id, seq, lane_id, derived
FROM events WHERE container_numbers @> ARRAY[%s]::text[]
ORDER BY occurred_at DESC LIMIT 100
"""
SITE_FEED_SQL = """
SELECT occurred_at, kind, device_id, seq, lane_id, container_numbers
FROM events WHERE site_id = %s AND occurred_at <= %s
ORDER BY occurred_at DESC LIMIT 100
"""

FILL_SQL = """
INSERT INTO events (occurred_at, device_id, seq, event_id, kind, site_id, lane_id, recorded_at,
                    sent_at, received_at, stored_at, container_numbers, content_sha256, envelope, derived)
SELECT t, 'FILL-' || (i % 64), i / 64 + 1, gen_random_uuid(), 'gate.passage', %(site)s,
       'L' || lpad((i % 64)::text, 3, '0'), t, t, t, t,
       ARRAY[filled_container(i)], sha256(int8send(i)),
       jsonb_build_object('kind', 'gate.passage', 'seq', i / 64 + 1,
                          'payload', jsonb_build_object(
                              'passage_id', 'P' || i, 'direction', 'in',
                              'containers', jsonb_build_array(filled_container(i)))),
       jsonb_build_object('containers', jsonb_build_array(jsonb_build_object('value', filled_container(i),
                                                                             'valid', true)))
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i,
     LATERAL (SELECT %(origin)s::timestamptz + i * %(step)s::interval AS t) AS moment
"""
CONTAINER_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION filled_container(i bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'FLU' || lpad((i / 4)::text, 8, '0') $$
"""


def fill_origin(conn: psycopg.Connection, target_rows: int) -> object:
    """Return the timestamp of row 0 so that row ``target_rows - 1`` lands on now."""
    step_s = 86_400 / ROWS_PER_DAY
    return conn.execute("SELECT now() - make_interval(secs => %s)", (target_rows * step_s,)).fetchone()[0]


def fill_to(
    conn: psycopg.Connection, origin: object, have: int, target: int, progress: Callable[[int], None]
) -> int:
    """Insert rows ``have .. target-1`` in steps of ``FILL_STEP_ROWS``; returns ``target``."""
    conn.execute(CONTAINER_FUNCTION_SQL)
    step = f"{86_400 / ROWS_PER_DAY} seconds"
    while have < target:
        last = min(have + FILL_STEP_ROWS, target) - 1
        conn.execute(
            FILL_SQL, {"site": FILL_SITE, "first": have, "last": last, "origin": origin, "step": step}
        )
        progress(last + 1 - have)
        have = last + 1
    conn.execute("ANALYZE events")
    return have


def query_latencies(conn: psycopg.Connection, rows: int, seed: int = 7) -> dict[str, np.ndarray]:
    """Time ``QUERIES_PER_SIZE`` container timelines and site feeds at random points."""
    chooser = random.Random(seed)
    containers = [
        f"FLU{chooser.randrange(rows // EVENTS_PER_CONTAINER):08d}" for _ in range(QUERIES_PER_SIZE)
    ]
    newest = conn.execute("SELECT max(occurred_at) FROM events WHERE site_id = %s", (FILL_SITE,)).fetchone()[
        0
    ]
    span_s = rows * 86_400 / ROWS_PER_DAY
    moments = [
        conn.execute(
            "SELECT %s::timestamptz - make_interval(secs => %s)", (newest, chooser.random() * span_s)
        ).fetchone()[0]
        for _ in range(QUERIES_PER_SIZE)
    ]

    timeline = _time_each(conn, CONTAINER_TIMELINE_SQL, [(number,) for number in containers])
    feed = _time_each(conn, SITE_FEED_SQL, [(FILL_SITE, moment) for moment in moments])
    return {"container_timeline": timeline, "site_feed": feed}


def _time_each(conn: psycopg.Connection, sql: str, parameters: list[tuple[object, ...]]) -> np.ndarray:
    conn.execute(sql, parameters[0]).fetchall()  # plan cache and first-touch warm-up
    latencies = []
    for values in parameters:
        began = time.perf_counter()
        conn.execute(sql, values).fetchall()
        latencies.append(time.perf_counter() - began)
    return np.array(latencies)
