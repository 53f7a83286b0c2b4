"""The experiment tests that touch every experiment table, run again with the call log in a real PostgreSQL.

Importing a test function into this module collects it here too, where ``log`` below (a PostgreSQL log)
replaces the DuckDB file of ``conftest.py``: the same assertions, on the other backend.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taelio_core.calllog import PostgresCallLog
from tests.experiments.test_assertions import (  # noqa: F401 - collected again here, on PostgreSQL
    checked,
    test_a_rubric_is_graded_by_the_judge_chain_once_per_answer_and_charged,
    test_checks_are_stored_with_the_experiment_and_scored_per_cell_and_per_variant,
)
from tests.experiments.test_dataset import test_saved_sets_round_trip_and_unknown_names_are_named  # noqa: F401
from tests.experiments.test_judgment import (  # noqa: F401
    ran,
    test_the_judge_asks_both_orders_and_counts_only_consistent_verdicts,
    test_votes_drive_the_leaderboard_verdict_and_cost_per_win,
)
from tests.experiments.test_runner import (  # noqa: F401
    test_cancel_then_resume_skips_done_cells,
    test_every_cell_is_a_logged_priced_request_marked_as_experiment,
    test_the_run_stops_at_the_cost_cap_and_never_crosses_it,
)


@pytest.fixture
def log(pg_url: str, tmp_path: Path) -> Iterator[PostgresCallLog]:
    call_log = PostgresCallLog(pg_url, spool=tmp_path)
    yield call_log
    call_log.close()


def test_this_module_runs_on_postgresql(log: PostgresCallLog) -> None:
    assert log.location.startswith("postgresql://")
