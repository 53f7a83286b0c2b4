"""Retries are not fallbacks, and a pinned request says so (issue 12, part 6).

Before: ``fallback_depth`` counted every failed attempt, a retry of the same
entry included, and nothing said how long the router waited before it (about
350 ms of a traced request went unexplained). A request pinned to a provider
looked like any other.
"""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa

from taelio_core.calllog import DuckDBCallLog
from taelio_core.calllog.arrow import ATTEMPT_SCHEMA, REQUEST_SCHEMA, rows_to_table
from taelio_core.calllog.rows import encode
from taelio_core.cli.generate import print_trace
from taelio_core.errors import ProviderUnavailable
from tests.resilience.support import INPUTS, FakeClock, router, run, scripted


def _retried_once(sink=None):  # noqa: ANN001, ANN202
    """a fails once (a 5xx), is retried after a backoff and answers: one entry, no fallback."""
    clock = FakeClock()
    r = router({"a": scripted("a", [ProviderUnavailable, "from a"])}, clock=clock, sink=sink)
    return run(r.agenerate("pro", "idea", INPUTS)), clock


def test_a_retry_of_the_same_entry_is_not_a_fallback_and_shows_its_number_and_wait() -> None:
    result, clock = _retried_once()
    assert [(a.provider, a.retry) for a in result.attempts] == [("a", 0), ("a", 1)]
    assert result.ok and result.fallback_depth == 0 and result.retries == 1
    [wait] = clock.sleeps
    assert result.attempts[1].wait_ms == wait * 1000.0 and result.attempts[0].wait_ms == 0.0
    assert result.as_dict()["attempts"][1]["wait_ms"] == round(wait * 1000.0, 2)
    out = io.StringIO()
    print_trace(result, out)
    assert f"attempt 2 a:a1 (retry 1 after {wait * 1000:,.0f} ms): ok" in out.getvalue()


def test_a_move_to_another_entry_is_a_fallback_and_its_retries_are_not() -> None:
    clock = FakeClock()
    r = router({"a": scripted("a", [ProviderUnavailable]), "b": scripted("b", ["from b"])}, clock=clock)
    result = run(r.agenerate("pro", "idea", INPUTS))
    assert [(a.provider, a.retry) for a in result.attempts] == [("a", 0), ("a", 1), ("a", 2), ("b", 0)]
    assert result.fallback_depth == 1 and result.retries == 2


def test_a_pinned_request_says_so_in_its_trace_and_log_row(tmp_path: Path) -> None:
    log = DuckDBCallLog(tmp_path / "pinned.duckdb")
    try:
        r = router({}, sink=log)
        pinned = run(r.agenerate("pro", "idea", INPUTS, provider="b"))
        free = run(r.agenerate("pro", "idea", INPUTS))
        retried, _ = _retried_once(sink=log)
        log.flush()
        rows = log.query("SELECT request_id, pinned_provider, fallback_depth, retries FROM requests")
        attempts = log.query("SELECT request_id, n, retry, wait_ms FROM attempts ORDER BY n")
    finally:
        log.close()
    assert pinned.pinned_provider == "b" and pinned.as_dict()["pinned_provider"] == "b"
    assert free.pinned_provider is None
    out = io.StringIO()
    print_trace(pinned, out)
    assert "pinned to provider b" in out.getvalue()
    by_id = {row.request_id: row for row in rows.itertuples(index=False)}
    assert by_id[pinned.request_id].pinned_provider == "b"
    assert pd.isna(by_id[free.request_id].pinned_provider)
    assert (by_id[retried.request_id].fallback_depth, by_id[retried.request_id].retries) == (0, 1)
    logged = attempts[attempts.request_id == retried.request_id]
    assert logged.retry.tolist() == [0, 1]
    assert logged.wait_ms.tolist() == [0.0, retried.attempts[1].wait_ms]


def test_rows_journaled_before_the_new_columns_still_load_with_their_defaults() -> None:
    result, _ = _retried_once()
    request, attempts = encode(result)
    old_request, old_attempts = request[:-2], [a[:-2] for a in attempts]  # the shape before migration 012
    requests = rows_to_table([old_request, request], REQUEST_SCHEMA, store_text=True)
    tried = rows_to_table(old_attempts + attempts, ATTEMPT_SCHEMA)
    assert requests.column("retries").to_pylist() == [0, 1]
    assert requests.column("pinned_provider").to_pylist() == [None, None]
    assert tried.column("wait_ms").to_pylist()[:2] == [0.0, 0.0]
    assert tried.schema.equals(ATTEMPT_SCHEMA) and isinstance(tried, pa.Table)
