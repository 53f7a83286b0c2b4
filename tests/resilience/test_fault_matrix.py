"""Section 6: every provider x every fault x whole/streamed, through the real SDKs and a real DuckDB file.

The cases and the expected outcome of each are in ``fault_matrix.py`` (which also prints them as a table).
"""
from __future__ import annotations

import pytest

from tests.resilience.fault_matrix import CASES, MODELS, NEXT, expected_rows, run_case

PARAMS = [(case, provider, mode) for case in CASES for provider in MODELS for mode in case.modes]
IDS = [f"{provider}-{case.name.replace(' ', '_')}-{mode}" for case, provider, mode in PARAMS]


@pytest.mark.parametrize("case, provider, mode", PARAMS, ids=IDS)
def test_fault_matrix(fake_server, tmp_path, case, provider, mode):
    out = run_case(fake_server, tmp_path, provider, case, mode)
    assert out.escaped is None
    assert out.rows == expected_rows(case, provider)
    assert out.logged == out.rows  # every attempt in DuckDB, with the same error_type and http_status
    assert out.result.status == case.status
    served = {"P": provider, "Q": NEXT[provider], None: None}[case.served_by]
    assert out.result.provider == served
    if case.name == "401":
        assert out.next_skip is not None and out.next_skip.endswith("(key rejected)")
    if case.name == "404 model not found":
        assert out.next_skip is not None and out.next_skip.endswith("(model retired?)")
    if case.status == "truncated":
        assert out.result.text and not out.result.ok
