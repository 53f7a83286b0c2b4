"""Which time bucket a chart over time uses, chosen from the selected range and the data in it.

Why: a chart of one day of data in daily buckets is a single point (drawn as
nothing by a line), a 3.5-hour outage in daily buckets is a dip of a few
percent, and the bucket still filling at the end of the range looks like a
cliff. So the bucket follows the span the data actually covers inside the
filter: a minute up to ``MINUTE_UP_TO``, an hour up to ``hourly_up_to``
(longer on Health, where a short outage must show), then a day, then a week.

Below an hour, the data decides too: a rate drawn from one attempt a point
swings between 0 and 100 %, so minute points become 5- or 15-minute points
until each holds ``MIN_PER_POINT`` attempts on average.

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

from taelio_core.analytics.filters import Filters
from taelio_core.analytics.rollup import Reader

__all__ = ["BUCKET_LENGTH", "FINE_STEPS", "HOURLY_UP_TO", "MINUTE_UP_TO", "MIN_PER_POINT", "TimeAxis",
           "choose_bucket", "choose_step", "fine_rollups", "time_axis"]

BUCKET_LENGTH = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1),
                 "week": timedelta(weeks=1)}
MINUTE_UP_TO = timedelta(hours=3)       # <= 180 points
HOURLY_UP_TO = timedelta(days=3)        # <= 72 points (Costs); Health passes a longer one
WEEKLY_FROM = timedelta(days=180)
FINE_STEPS = (1, 5, 15)                 # minutes a sub-hour point may span
MIN_PER_POINT = 5                       # attempts a sub-hour point holds on average, when the data allows


@dataclass(frozen=True, kw_only=True)
class TimeAxis:
    """The bucket every chart over time on a page uses, and what the data covers."""

    bucket: str
    step_minutes: int = 1                  # with ``bucket == "minute"``: minutes per point (one of FINE_STEPS)
    first: datetime | None = None          # the first and last logged time inside the filter (UTC)
    last: datetime | None = None
    partial_from: datetime | None = None   # the start of the last bucket when it was still filling at ``now``

    @property
    def length(self) -> timedelta:
        return timedelta(minutes=self.step_minutes) if self.bucket == "minute" else BUCKET_LENGTH[self.bucket]

    @property
    def label(self) -> str:
        """What one point covers, for a caption: "minute", "5 minutes", "hour"..."""
        return f"{self.step_minutes} minutes" if self.bucket == "minute" and self.step_minutes > 1 else self.bucket

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


def choose_step(span: timedelta, attempts: float) -> int:
    """Minutes per sub-hour point: the finest of ``FINE_STEPS`` whose points hold ``MIN_PER_POINT`` attempts."""
    minutes = max(span / timedelta(minutes=1), 1.0)
    for step in FINE_STEPS:
        if attempts / max(minutes / step, 1.0) >= MIN_PER_POINT:
            return step
    return FINE_STEPS[-1]


def _floor(t: datetime, bucket: str, step_minutes: int = 1) -> datetime:
    if bucket == "minute":
        return t.replace(minute=t.minute - t.minute % step_minutes, second=0, microsecond=0)
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
    step = choose_step(last - first, float(row["n"] or 0)) if bucket == "minute" else 1
    axis = TimeAxis(bucket=bucket, step_minutes=step, first=first, last=last)
    start = _floor(last, bucket, step)
    partial = start if start + axis.length > now.astimezone(UTC) else None
    return TimeAxis(bucket=bucket, step_minutes=step, first=first, last=last, partial_from=partial)


@contextmanager
def fine_rollups(r: Reader, axis: TimeAxis) -> Iterator[None]:
    """Inside the block, on ``r``'s connection, the rollups hold minute buckets (when ``axis`` wants them)."""
    if axis.bucket != "minute" or axis.first is None or axis.last is None:
        yield
        return
    tables = r.build_fine(start=_floor(axis.first, "minute", axis.step_minutes),
                          end=axis.last + timedelta(minutes=1), minutes=axis.step_minutes)
    try:
        yield
    finally:
        r.drop_fine(tables)
