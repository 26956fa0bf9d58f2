"""The pull feed of stored events, in stored order, resumable from a cursor."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row

from api.pagination import decode_cursor, encode_cursor, paginate

CURSOR_TAG = "events"


def feed(
    conn: Connection,
    sites: list[str],
    *,
    kind: str | None,
    since: datetime | None,
    settle_s: float,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Events stored after the cursor, oldest first.

    ``stored_at`` is the storing transaction's start time, so a transaction that
    commits late can carry an earlier ``stored_at`` than rows already served. The
    feed serves only rows stored ``settle_s`` seconds ago or earlier, which covers
    every transaction shorter than that.
    """
    after = decode_cursor(CURSOR_TAG, cursor, (datetime, str, int))
    clauses = ["site_id = ANY(%(sites)s)", "stored_at <= now() - %(settle)s"]
    params: dict[str, Any] = {"sites": sites, "settle": timedelta(seconds=settle_s), "limit": limit + 1}
    if kind is not None:
        clauses.append("kind = %(kind)s")
        params["kind"] = kind
    if since is not None:
        clauses.append("stored_at >= %(since)s")
        params["since"] = since
    if after is not None:
        clauses.append("(stored_at, device_id, seq) > (%(after_at)s, %(after_device)s, %(after_seq)s)")
        params.update(after_at=after[0], after_device=after[1], after_seq=after[2])

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT event_id, site_id, device_id, seq, kind, lane_id, occurred_at, received_at, stored_at, "
            f"container_numbers FROM events WHERE {' AND '.join(clauses)} "
            "ORDER BY stored_at, device_id, seq LIMIT %(limit)s",
            params,
        ).fetchall()
    page = paginate(rows, limit, CURSOR_TAG, _key)
    # Unlike other lists the feed never ends: the cursor of its last page is where
    # the next request resumes once more events are stored.
    if page["next_cursor"] is None and page["items"]:
        page["next_cursor"] = encode_cursor(CURSOR_TAG, _key(page["items"][-1]))
    elif page["next_cursor"] is None:
        page["next_cursor"] = cursor
    return page


def _key(row: dict[str, Any]) -> list[Any]:
    return [row["stored_at"], row["device_id"], row["seq"]]
