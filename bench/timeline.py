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
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg

FILL_SITE = "BENCH-FILL"
# About 6 events/s around the clock: a large container terminal's gates, scanners
# and seal readers together. At this rate 100 M rows are 184 days, the minimum
# retention for network logs under China's Cybersecurity Law.
ROWS_PER_DAY = 545_000
EVENTS_PER_CONTAINER = 4
FILL_STEP_ROWS = 500_000
# Parallel INSERT ... SELECT statements; the benchmark's machine has 2 cores.
FILL_CONNECTIONS = 2
QUERIES_PER_SIZE = 200

# The query of GET /api/v1/containers/{number}/timeline (api/containers/service.py):
# one container's events at the caller's sites within its visit, oldest first.
CONTAINER_TIMELINE_SQL = """
SELECT event_id, device_id, seq, kind, lane_id, occurred_at, recorded_at, received_at,
       envelope -> 'payload' AS payload, derived AS reads
FROM events
WHERE site_id = ANY(%s) AND container_numbers @> ARRAY[%s]::text[]
  AND occurred_at >= %s AND occurred_at < %s
ORDER BY occurred_at, device_id, seq LIMIT 101
"""
# A visit's window in the timeline query: a container's dwell at a terminal is
# typically a few days.
VISIT_WINDOW = "3 days"
SITE_FEED_SQL = """
SELECT occurred_at, kind, device_id, seq, lane_id, container_numbers
FROM events WHERE site_id = %s AND occurred_at <= %s
ORDER BY occurred_at DESC LIMIT 100
"""

FILL_SQL = """
INSERT INTO events (occurred_at, device_id, seq, event_id, kind, site_id, lane_id, recorded_at,
                    sent_at, received_at, stored_at, container_numbers, content_sha256, envelope, derived)
SELECT t, 'FILL-' || (i %% 64), i / 64 + 1, gen_random_uuid(), 'gate.passage', %(site)s,
       'L' || lpad((i %% 64)::text, 3, '0'), t, t, t, t,
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
    """Insert rows ``have .. target-1`` in steps of ``FILL_STEP_ROWS``; returns ``target``.

    The table's indexes and unique constraint are dropped during the fill and built
    again afterwards, which is several times faster than maintaining them row by
    row. A freshly built index is more compact than one grown by inserts, so the
    queries afterwards are slightly favoured.
    """
    conn.execute(CONTAINER_FUNCTION_SQL)
    rebuild = _drop_indexes(conn)
    ranges = [
        (first, min(first + FILL_STEP_ROWS, target) - 1) for first in range(have, target, FILL_STEP_ROWS)
    ]
    database_url = conn.info.dsn
    with ThreadPoolExecutor(FILL_CONNECTIONS) as pool:
        for done in pool.map(lambda bounds: _fill_range(database_url, origin, *bounds), ranges):
            progress(done)
    have = target
    for statement in rebuild:
        conn.execute(statement)
    # Statistics for the planner. No VACUUM: on freshly inserted rows it would only
    # set hint bits and visibility flags, rewriting every page (6 GB at 10 M rows).
    conn.execute("ANALYZE events")
    return have


def _fill_range(database_url: str, origin: object, first: int, last: int) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        # One statement is one transaction; losing it in a crash only loses test data.
        conn.execute("SET synchronous_commit = off")
        step = f"{86_400 / ROWS_PER_DAY} seconds"
        conn.execute(
            FILL_SQL, {"site": FILL_SITE, "first": first, "last": last, "origin": origin, "step": step}
        )
    return last + 1 - first


def _drop_indexes(conn: psycopg.Connection) -> list[str]:
    """Drop every index of ``events``; return the statements that create them again."""
    rows = conn.execute(
        """
        SELECT i.indexname, i.indexdef, c.conname, pg_get_constraintdef(c.oid)
        FROM pg_indexes AS i
        LEFT JOIN pg_constraint AS c ON c.conname = i.indexname AND c.conrelid = 'events'::regclass
        WHERE i.schemaname = 'public' AND i.tablename = 'events'
        """
    ).fetchall()
    rebuild = []
    for name, definition, constraint, constraint_definition in rows:
        if constraint:
            conn.execute(f'ALTER TABLE events DROP CONSTRAINT "{constraint}"')
            rebuild.append(f'ALTER TABLE events ADD CONSTRAINT "{constraint}" {constraint_definition}')
        else:
            conn.execute(f'DROP INDEX "{name}"')
            rebuild.append(definition)
    return rebuild


def query_latencies(
    conn: psycopg.Connection, origin: object, rows: int, seed: int = 7
) -> dict[str, np.ndarray]:
    """Time ``QUERIES_PER_SIZE`` container timelines and site feeds at random points.

    ``origin`` is the time of row 0, as returned by :func:`fill_origin`.
    """
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

    windows = [
        conn.execute(
            "SELECT t - %s::interval, t + interval '1 microsecond' FROM "
            "(SELECT %s::timestamptz + %s * make_interval(secs => %s) AS t) AS last_event",
            (VISIT_WINDOW, origin, int(number[3:]) * EVENTS_PER_CONTAINER + 3, 86_400 / ROWS_PER_DAY),
        ).fetchone()
        for number in containers
    ]
    timeline = _time_each(
        conn,
        CONTAINER_TIMELINE_SQL,
        [([FILL_SITE], number, *window) for number, window in zip(containers, windows, strict=True)],
    )
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
