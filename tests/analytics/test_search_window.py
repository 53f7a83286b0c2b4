"""The Calls search's time window: the newest slice first, sized from the hourly rollup, widened slice by slice."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import taelio_core.analytics as A
from taelio_core.calllog import DuckDBCallLog
from tests.seeded_log import FIXED_NOW, build_results, seed_log

STEP = 30          # requests per slice in these tests (the seeded log holds 240 over 20 days)
WORD = "lighthouse"    # every seeded prompt holds it: a search that matches everything in the window


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    seeded = seed_log(tmp_path_factory.mktemp("window") / "log.duckdb", now=FIXED_NOW)
    with DuckDBCallLog(seeded.path) as log:
        yield log


def _times(log, since=None, until=None) -> list:  # noqa: ANN001
    frame = log.query("SELECT ts FROM requests ORDER BY ts DESC")
    times = [t.to_pydatetime() for t in frame["ts"]]
    return [t for t in times if (since is None or t >= since) and (until is None or t < until)]


def _ids(log, window: A.SearchWindow, search: str = WORD) -> set[str]:  # noqa: ANN001
    rows, total = A.list_requests(log, A.Filters(), search=search, search_since=window.since, limit=10_000)
    assert len(rows) == total
    return set(rows["request_id"])


def test_the_first_window_is_the_newest_whole_hours_holding_at_most_a_step_of_requests(log):
    window = A.search_window(log, A.Filters(), step_requests=STEP)
    assert window.since is not None and window.since.minute == 0 and window.since.second == 0
    inside = _times(log, since=window.since)
    assert window.requests == len(inside) <= STEP
    # The hour just before the window (the next that holds requests) would have taken it past a step.
    older = _times(log, until=window.since)
    next_hour = older[0].replace(minute=0, second=0, microsecond=0)
    assert len(inside) + len(_times(log, since=next_hour, until=window.since)) > STEP
    assert window.until == max(inside).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def test_the_window_follows_the_traffic_rate_not_a_fixed_number_of_hours(tmp_path: Path):
    # The same log with 30 more requests in the last two hours: the window shrinks to fit the busier hours.
    busy = build_results(now=FIXED_NOW) + build_results(now=FIXED_NOW, n=STEP, days=2 / 24, seed=3)
    with DuckDBCallLog(seed_log(tmp_path / "quiet.duckdb", now=FIXED_NOW).path) as quiet_log:
        quiet = A.search_window(quiet_log, A.Filters(), step_requests=STEP)
    with DuckDBCallLog(seed_log(tmp_path / "busy.duckdb", busy, now=FIXED_NOW).path) as busy_log:
        window = A.search_window(busy_log, A.Filters(), step_requests=STEP)
        assert window.requests == len(_times(busy_log, since=window.since)) <= STEP
    assert quiet.since is not None and window.since is not None and window.since > quiet.since


def test_each_older_step_adds_the_slice_just_before_with_no_gap_and_no_overlap(log):
    previous = A.search_window(log, A.Filters(), step_requests=STEP)
    seen = _ids(log, previous)
    for steps in range(2, 5):
        window = A.search_window(log, A.Filters(), steps=steps, step_requests=STEP)
        assert window.since is not None and window.since == previous.older < previous.since
        slice_times = _times(log, since=window.since, until=previous.since)
        assert 0 < len(slice_times) <= STEP
        assert window.requests == previous.requests + len(slice_times)
        # The wider search finds exactly the narrower one's matches plus those of the new slice.
        found = _ids(log, window)
        added = found - seen
        assert seen <= found and len(added) == len(slice_times)
        previous, seen = window, found


def test_stepping_back_ends_at_the_whole_range_whose_search_is_the_full_one(log):
    full_rows, full_total = A.list_requests(log, A.Filters(), search=WORD)
    steps, window = 1, A.search_window(log, A.Filters(), step_requests=STEP)
    while not window.whole:
        steps += 1
        window = A.search_window(log, A.Filters(), steps=steps, step_requests=STEP)
    assert window.requests == len(_times(log)) and window.older is None
    rows, total = A.list_requests(log, A.Filters(), search=WORD, search_since=window.since)
    assert total == full_total and rows.equals(full_rows)
    everything = A.search_window(log, A.Filters(), steps=0, step_requests=STEP)
    assert everything.whole and everything.requests == len(_times(log))


def test_the_count_is_of_the_matches_in_the_searched_period_only(log):
    window = A.search_window(log, A.Filters(), step_requests=STEP)
    _, in_window = A.list_requests(log, A.Filters(), search=WORD, search_since=window.since)
    _, everywhere = A.list_requests(log, A.Filters(), search=WORD)
    assert in_window == window.requests < everywhere == len(_times(log))


def test_an_hour_holding_more_than_a_step_is_a_slice_on_its_own(log):
    window = A.search_window(log, A.Filters(), step_requests=1)
    assert window.since is not None
    assert window.requests == len(_times(log, since=window.since)) >= 1
    assert window.until == window.since + timedelta(hours=1)


def test_the_window_is_sized_within_the_filters_and_statuses(log):
    failed = A.search_window(log, A.Filters(), statuses=("failed",), step_requests=5)
    rows, _ = A.list_requests(log, A.Filters(), statuses=("failed",), limit=10_000)
    assert failed.requests == sum(ts >= failed.since for ts in rows["ts"]) <= 5
    nothing = A.search_window(log, A.Filters(tiers=("nobody",)), step_requests=5)
    assert nothing.whole and nothing.requests == 0 and nothing.until is None


def test_a_negative_step_count_is_refused_in_one_sentence(log):
    with pytest.raises(ValueError, match="steps must be >= 0"):
        A.search_window(log, A.Filters(), steps=-1)
