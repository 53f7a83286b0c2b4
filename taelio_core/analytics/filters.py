"""The one filter every analytics query takes, turned into parameterised SQL.

The dashboard's sidebar builds a ``Filters`` value; each query in this package
asks it for a ``WHERE`` clause and its parameters, so every chart on every page
agrees on what "the selected data" means. Values are always bound as
parameters, never formatted into the SQL text.

Both tables carry ``ts``, ``source``, ``tier`` and ``task``, so no query needs
a join to filter. ``provider`` means who served a request in ``requests`` and
who was tried in ``attempts``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from taelio_core.calllog.sources import SOURCES

__all__ = ["BUCKETS", "SOURCES", "Filters", "bucket_for", "day_start"]

# date_trunc parts a chart may group by (a closed set: safe to place in SQL text). "minute" needs the
# minute-grain rollups of ``time_buckets.fine_rollups`` (the stored ones are hourly).
BUCKETS = ("minute", "hour", "day", "week")


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class Filters:
    """What the user selected. Empty tuples mean "all"; dates are UTC days, ``end`` inclusive."""

    start: date | None = None
    end: date | None = None
    sources: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()

    @classmethod
    def last_days(cls, days: int, *, today: date | None = None, **kw: Any) -> Filters:
        today = today or datetime.now(UTC).date()
        return cls(start=today - timedelta(days=days - 1), end=today, **kw)

    @property
    def start_ts(self) -> datetime | None:
        return day_start(self.start) if self.start else None

    @property
    def end_ts(self) -> datetime | None:
        """Exclusive upper bound: midnight after ``end``."""
        return day_start(self.end + timedelta(days=1)) if self.end else None

    @property
    def span(self) -> timedelta | None:
        if self.start is None or self.end is None:
            return None
        return self.end_ts - self.start_ts  # type: ignore[operator]

    def previous(self) -> Filters | None:
        """The period of the same length just before this one (for "vs previous period")."""
        if self.start is None or self.end is None:
            return None
        days = (self.end - self.start).days + 1
        return Filters(start=self.start - timedelta(days=days), end=self.start - timedelta(days=1),
                       sources=self.sources, tiers=self.tiers, tasks=self.tasks, providers=self.providers)

    def where(self, alias: str = "", *, dates: bool = True, providers: bool = True,
              extra: tuple[str, ...] = (), time_column: str = "ts") -> tuple[str, list[Any]]:
        """``("WHERE ...", params)`` for a table with ts/source/tier/task/provider columns.

        ``time_column`` other than ``ts`` is a rollup's naive-UTC ``hour`` or ``day``: the bounds are
        bound as naive UTC times too (they are midnights, so whole hours and days compare exactly).
        """
        p = f"{alias}." if alias else ""
        parts: list[str] = list(extra)
        params: list[Any] = []
        naive = time_column != "ts"
        for op, bound in ((">=", self.start_ts), ("<", self.end_ts)):
            if dates and bound is not None:
                parts.append(f"{p}{time_column} {op} ?")
                params.append(bound.replace(tzinfo=None) if naive else bound)
        for column, values in (("source", self.sources), ("tier", self.tiers), ("task", self.tasks),
                               ("provider", self.providers if providers else ())):
            if values:
                parts.append(f"{p}{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        return ("WHERE " + " AND ".join(parts)) if parts else "", params


def bucket_for(filters: Filters, *, default: str = "day") -> str:
    """A time bucket that gives a readable number of points for the selected range."""
    span = filters.span
    if span is None:
        return default
    if span <= timedelta(days=3):
        return "hour"
    if span > timedelta(days=180):
        return "week"
    return "day"


def check_bucket(bucket: str) -> str:
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    return bucket
