"""Which period a Calls search covers: the newest slice of the filtered range first, older slices on request.

A text search reads every prompt and output in the range it covers, so its time grows with that range
(0.4-3.8 s over 10M requests). The Calls page therefore searches the newest slice first and says which
period it searched; "search older" adds the slice before it, "search everything" drops the window.

A slice is whole UTC hours, sized from the hourly rollup (``request_rollup``), not from a fixed number of
hours: it holds at most ``step_requests`` requests in the filtered range (at least one hour, so an hour
holding more than that is one slice on its own). Slice ``k + 1`` ends where slice ``k`` starts: the
windows of 1, 2, 3, ... steps grow with no gap and no overlap. When a window reaches the oldest hour of
the filtered range it is the whole range (``since`` is None), and the search is exactly the full one.

The rollup has no users: with a user named, the window is sized by all users' requests (it then holds
fewer, never more, than ``step_requests`` to read).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from taelio_core.analytics import rollup
from taelio_core.analytics.filters import Filters
from taelio_core.analytics.rollup import Reader
from taelio_core.calllog import CallLog

__all__ = ["SEARCH_STEP_REQUESTS", "SearchWindow", "search_window"]

# How many requests one slice may hold. At 10M requests a search reads ~0.1-0.4 us per request in range
# (benchmarks/bench_reads.py), so a slice of 250k searches in well under the 300 ms goal at any log size.
SEARCH_STEP_REQUESTS = 250_000
_HOUR = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class SearchWindow:
    """The period a search covers: ``since`` (inclusive) up to now; ``since`` None means the whole range."""

    since: datetime | None
    until: datetime | None        # the end of the newest hour holding a request in range (for the page)
    requests: int                 # requests in range inside the window (the rollup's count)
    steps: int                    # how many slices it holds (0: the whole range was asked for)
    older: datetime | None        # where the window of ``steps + 1`` slices would start (None: everything)

    @property
    def whole(self) -> bool:
        return self.since is None


def search_window(log: CallLog | Reader, filters: Filters, *, statuses: tuple[str, ...] = (), steps: int = 1,
                  step_requests: int = SEARCH_STEP_REQUESTS) -> SearchWindow:
    """The newest ``steps`` slices of the filtered range (``steps=0``: the whole range), from the rollup."""
    if steps < 0 or step_requests < 1:
        raise ValueError(f"search window: steps must be >= 0 and step_requests >= 1, not {steps}, {step_requests}")
    extra = (f"status IN ({', '.join('?' for _ in statuses)})",) if statuses else ()
    where, params = filters.where(time_column="hour", extra=extra)
    hours = rollup.read(log, lambda r: r.query(
        f"SELECT hour, sum(requests)::BIGINT AS n FROM request_rollup {where} GROUP BY hour ORDER BY hour DESC",
        [*statuses, *params]))
    counts = [int(n) for n in hours["n"]]
    starts = [_aware(h) for h in hours["hour"]]
    until = starts[0] + _HOUR if starts else None
    if not starts or steps == 0:
        return SearchWindow(since=None, until=until, requests=sum(counts), steps=0, older=None)
    ends = _slice_ends(counts, step_requests, steps + 1)   # index of each slice's oldest hour
    last = ends[min(steps, len(ends)) - 1]
    since = None if last == len(starts) - 1 else starts[last]
    older = None if since is None or len(ends) <= steps or ends[steps] == len(starts) - 1 else starts[ends[steps]]
    return SearchWindow(since=since, until=until, requests=sum(counts[:last + 1]), steps=steps, older=older)


def _slice_ends(counts: list[int], step_requests: int, slices: int) -> list[int]:
    """For newest-first hourly counts: the index of the oldest hour of each of the first ``slices`` slices."""
    ends: list[int] = []
    i = 0
    while i < len(counts) and len(ends) < slices:
        held = counts[i]                       # a slice holds at least its first hour
        while i + 1 < len(counts) and held + counts[i + 1] <= step_requests:
            i += 1
            held += counts[i]
        ends.append(i)
        i += 1
    return ends


def _aware(hour: object) -> datetime:
    """A rollup hour (naive UTC in DuckDB, maybe aware in PostgreSQL) as an aware UTC datetime."""
    value = hour.to_pydatetime() if hasattr(hour, "to_pydatetime") else hour
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
