"""The HTTP API's users on the dashboard: top users on Costs, a user filter on Calls, ``api`` as a source."""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from taelio_core import analytics as A
from taelio_core.calllog import DuckDBCallLog
from tests.app.conftest import make_app, open_page
from tests.seeded_log import FIXED_NOW, build_results, clock_now, seed_log
from ui.text import money

pytestmark = pytest.mark.timeout(180)
USERS = ("alice", "bob", "carol")


def api_results(now):  # noqa: ANN001, ANN201 - the seeded traffic, a third of it from API users
    results = build_results(now=now, days=10)
    return [replace(r, source="api", user_id=USERS[(i // 3) % 3]) if i % 3 == 0 else r for i, r in enumerate(results)]


def expected_spend(results) -> dict[str, Decimal]:  # noqa: ANN001
    out: dict[str, Decimal] = {}
    for r in results:
        if r.user_id is not None:
            out[r.user_id] = out.get(r.user_id, Decimal(0)) + sum((a.cost_usd or Decimal(0) for a in r.attempts),
                                                                  Decimal(0))
    return out


def test_top_users_sums_each_users_requests_and_cost(tmp_path: Path) -> None:
    results = api_results(FIXED_NOW)
    seed_log(tmp_path / "u.duckdb", results, now=FIXED_NOW)
    with DuckDBCallLog(tmp_path / "u.duckdb") as log:
        top = A.top_users(log, A.Filters.last_days(30, today=FIXED_NOW.date()))
        only_bob, n = A.list_requests(log, A.Filters(), user="bob")
    spend = expected_spend(results)
    assert list(top["user_id"]) == sorted(spend, key=spend.get, reverse=True)
    for row in top.itertuples():
        mine = [r for r in results if r.user_id == row.user_id]
        assert row.requests == len(mine) and row.failed == sum(1 for r in mine if not r.ok)
        assert row.unpriced == sum(1 for r in mine if r.cost_usd is None and r.usage.output_tokens)
        assert Decimal(str(row.cost_usd)).quantize(Decimal("1e-9")) == spend[row.user_id].quantize(Decimal("1e-9"))
    assert n == sum(1 for r in results if r.user_id == "bob") and set(only_bob["user_id"]) == {"bob"}


def test_costs_shows_top_users_and_calls_filters_by_user(tmp_path: Path, monkeypatch) -> None:
    now = clock_now()
    results = api_results(now)
    seed_log(tmp_path / "calls.duckdb", results, now=now)
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "calls.duckdb"))
    at = open_page(make_app(), "costs")
    table = next(df.value for df in at.dataframe if "user_id" in df.value.columns)
    spend = expected_spend(results)
    assert list(table["user_id"]) == sorted(spend, key=spend.get, reverse=True)
    assert list(table["cost"]) == [money(spend[u]) for u in table["user_id"]]
    assert "api" in at.sidebar.multiselect(key="filter_sources").options

    at = open_page(make_app(), "calls")
    at.text_input(key="calls_user").input("carol").run()
    shown = at.dataframe[0].value
    assert set(shown["user_id"]) == {"carol"} and len(shown) == sum(1 for r in results if r.user_id == "carol")
    caption = " ".join(c.value for c in at.caption)
    assert f"{len(shown)} matching requests" in caption
