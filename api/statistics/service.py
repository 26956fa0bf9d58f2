"""Passages, alerts and decisions per lane per hour or day, in the site's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import Connection

from api.errors import ApiError

BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# Maximum range per request: 31 days of hours, or a year of days.
MAX_RANGE = {"hour": timedelta(days=31), "day": timedelta(days=366)}
DEFAULT_RANGE = {"hour": timedelta(hours=24), "day": timedelta(days=7)}

STATISTICS_SQL = """
WITH passages AS (
    SELECT time_bucket(%(width)s, occurred_at, %(tz)s) AS bucket, coalesce(lane_id, '') AS lane,
           count(*) AS passages
    FROM events
    WHERE site_id = %(site)s AND kind = 'gate.passage'
      AND occurred_at >= %(since)s AND occurred_at < %(until)s
    GROUP BY 1, 2
), raised AS (
    SELECT time_bucket(%(width)s, first_raised_at, %(tz)s) AS bucket, coalesce(lane_id, '') AS lane,
           count(*) AS alerts
    FROM alerts
    WHERE site_id = %(site)s AND first_raised_at >= %(since)s AND first_raised_at < %(until)s
    GROUP BY 1, 2
), decided AS (
    SELECT time_bucket(%(width)s, issued_at, %(tz)s) AS bucket, lane_id AS lane,
           count(*) FILTER (WHERE decision = 'release') AS release,
           count(*) FILTER (WHERE decision = 'hold') AS hold,
           count(*) FILTER (WHERE decision = 'manual') AS manual
    FROM gate_decisions
    WHERE site_id = %(site)s AND issued_at >= %(since)s AND issued_at < %(until)s
    GROUP BY 1, 2
)
SELECT bucket, nullif(lane, '') AS lane, coalesce(passages, 0), coalesce(alerts, 0),
       coalesce(release, 0), coalesce(hold, 0), coalesce(manual, 0)
FROM passages FULL JOIN raised USING (bucket, lane) FULL JOIN decided USING (bucket, lane)
WHERE %(lane)s::text IS NULL OR lane = %(lane)s
ORDER BY bucket, lane
"""


def _local_start(moment: datetime, zone: ZoneInfo, bucket: str) -> datetime:
    local = moment.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        local = local.replace(hour=0)
    return local


def statistics(
    conn: Connection,
    site_id: str,
    bucket: str,
    lane: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    row = conn.execute("SELECT timezone FROM sites WHERE site_id = %s", (site_id,)).fetchone()
    assert row is not None, site_id
    zone = ZoneInfo(row[0])

    until = until or datetime.now(UTC)
    since = since or _local_start(until - DEFAULT_RANGE[bucket], zone, bucket)
    if until <= since:
        raise ApiError(
            422, "invalid_time_range", "until must be later than since.", "结束时间必须晚于开始时间。"
        )
    if until - since > MAX_RANGE[bucket]:
        days = MAX_RANGE[bucket].days
        raise ApiError(
            422,
            "time_range_too_long",
            f"{bucket} buckets cover at most {days} days; narrow since and until.",
            f"按{'小时' if bucket == 'hour' else '天'}统计最多覆盖 {days} 天，请缩小时间范围。",
        )

    rows = conn.execute(
        STATISTICS_SQL,
        {
            "width": BUCKETS[bucket],
            "tz": row[0],
            "site": site_id,
            "since": since,
            "until": until,
            "lane": lane,
        },
    ).fetchall()
    items = [
        {
            "bucket_start": start.astimezone(zone),
            "lane_id": lane_id,
            "passages": passages,
            "alerts": alerts,
            "decisions_release": release,
            "decisions_hold": hold,
            "decisions_manual": manual,
        }
        for start, lane_id, passages, alerts, release, hold, manual in rows
    ]
    return {
        "site_id": site_id,
        "timezone": row[0],
        "bucket": bucket,
        "since": since.astimezone(zone),
        "until": until.astimezone(zone),
        "items": items,
        "next_cursor": None,
    }
