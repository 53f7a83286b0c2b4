"""Which time bucket a chart over time uses, chosen from the selected range and the data in it.

Why: a chart of one day of data in daily buckets is a single point (drawn as
nothing by a line), a 3.5-hour outage in daily buckets is a dip of a few
percent, and the bucket still filling at the end of the range looks like a
cliff. So the bucket follows the span the data actually covers inside the
filter: a minute up to ``MINUTE_UP_TO``, an hour up to ``hourly_up_to``
(longer on Health, where a short outage must show), then a day, then a week.

Minute buckets are finer than the hourly rollups. For them ``fine_rollups``
builds the same rollup tables, at minute grain and for the data's span
only, as temporary tables that shadow the hourly ones on that connection:
every query over time then runs unchanged (one copy of each figure), and
the temporary tables are dropped when the block ends.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from taelio_core.analytics import rollup
from taelio_core.analytics.filters import Filters
from taelio_core.analytics.rollup import Reader

__all__ = ["BUCKET_LENGTH", "HOURLY_UP_TO", "MINUTE_UP_TO", "TimeAxis", "choose_bucket", "fine_rollups",
           "time_axis"]

BUCKET_LENGTH = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1),
                 "week": timedelta(weeks=1)}
MINUTE_UP_TO = timedelta(hours=3)       # <= 180 points
HOURLY_UP_TO = timedelta(days=3)        # <= 72 points (Costs); Health passes a longer one
WEEKLY_FROM = timedelta(days=180)


@dataclass(frozen=True, kw_only=True)
class TimeAxis:
    """The bucket every chart over time on a page uses, and what the data covers."""

    bucket: str
    first: datetime | None = None          # the first and last logged time inside the filter (UTC)
    last: datetime | None = None
    partial_from: datetime | None = None   # the start of the last bucket when it was still filling at ``now``

    @property
    def length(self) -> timedelta:
        return BUCKET_LENGTH[self.bucket]

    @property
    def empty(self) -> bool:
        return self.first is None


def choose_bucket(span: timedelta | None, *, hourly_up_to: timedelta = HOURLY_UP_TO) -> str:
    """The bucket for data covering ``span`` (None: no data, so the coarsest that makes sense: a day)."""
    if span is None:
        return "day"
    if span <= MINUTE_UP_TO:
        return "minute"
    if span <= hourly_up_to:
        return "hour"
    if span <= WEEKLY_FROM:
        return "day"
    return "week"


def _floor(t: datetime, bucket: str) -> datetime:
    if bucket == "minute":
        return t.replace(second=0, microsecond=0)
    if bucket == "hour":
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if bucket == "week" else day


def _utc(value: object) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    t = pd.Timestamp(value).to_pydatetime()
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def time_axis(r: Reader, filters: Filters, *, now: datetime, hourly_up_to: timedelta = HOURLY_UP_TO,
              dense_from: float = 0.0) -> TimeAxis:
    """The bucket for the data inside ``filters`` (one small query over the rollup), and its partial end.

    ``hourly_up_to`` past the usual ``HOURLY_UP_TO`` applies only when the data holds at least
    ``dense_from`` attempts per hour: hourly points of one attempt each would swing between 0 and 100 %.
    """
    where, params = filters.where(time_column="hour")
    row = r.query(f"SELECT min(hour) AS first, max(last_ts) AS last, sum(attempts) AS n FROM attempt_rollup {where}",
                  params).iloc[0]
    last = _utc(row["last"])
    # The first *time* inside the first hour is not in the rollup; the hour's start is close enough to pick a
    # bucket, and the minute-grain tables (built from raw rows) start at the first real minute anyway.
    first = _utc(row["first"])
    if first is None or last is None:
        return TimeAxis(bucket=choose_bucket(None))
    if last - first <= MINUTE_UP_TO + timedelta(hours=1):
        # Short enough for minutes, maybe: the exact first time, from the raw rows of its hour on.
        # ``extra`` comes first in the WHERE clause, so its bound comes first in the parameters.
        where, params = filters.where(extra=("ts >= ?",))
        first = _utc(r.query(f"SELECT min(ts) AS t FROM attempts {where}", [first, *params]).iloc[0]["t"]) or first
    hours = max((last - first) / timedelta(hours=1), 1.0)
    if float(row["n"] or 0) / hours < dense_from:
        hourly_up_to = HOURLY_UP_TO
    bucket = choose_bucket(last - first, hourly_up_to=hourly_up_to)
    start = _floor(last, bucket)
    partial = start if start + BUCKET_LENGTH[bucket] > now.astimezone(UTC) else None
    return TimeAxis(bucket=bucket, first=first, last=last, partial_from=partial)


@contextmanager
def fine_rollups(r: Reader, axis: TimeAxis) -> Iterator[None]:
    """Inside the block, on ``r``'s connection, the rollups hold minute buckets (when ``axis`` wants them)."""
    if axis.bucket != "minute" or axis.first is None or axis.last is None:
        yield
        return
    tables = rollup.build_fine(r.con, start=_floor(axis.first, "minute"), end=axis.last + timedelta(minutes=1))
    try:
        yield
    finally:
        for table in tables:
            r.con.execute(f"DROP TABLE IF EXISTS temp.{table}")
