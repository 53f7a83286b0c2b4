"""The shared sidebar: the data filter only where it filters something, and it keeps its values.

Streamlit forgets a widget's value on a run that does not draw it; the sidebar
keeps the filter's values itself, so a visit to Generate does not reset them.
"""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.app.conftest import make_app, metric, open_page
from ui.text import money

pytestmark = pytest.mark.timeout(180)

FILTER_KEYS = {"filter_sources", "filter_tiers", "filter_tasks", "filter_providers"}


def _filter_widgets(at) -> set[str]:
    return {m.key for m in at.sidebar.multiselect} & FILTER_KEYS


@pytest.mark.parametrize("page", ["generate", "compare", "sandbox"])
def test_pages_that_read_no_logged_data_show_no_filter(seeded_app, page):
    at = open_page(make_app(), page)
    assert _filter_widgets(at) == set()
    assert not at.sidebar.date_input
    assert any("data filter is on Costs, Health and Calls" in c.value for c in at.sidebar.caption)
    assert any("requests logged" in c.value for c in at.sidebar.caption)     # where the log lives stays


@pytest.mark.parametrize("page", ["costs", "health", "calls"])
def test_analytics_pages_show_the_filter(seeded_app, page):
    at = open_page(make_app(), page)
    assert _filter_widgets(at) == FILTER_KEYS and len(at.sidebar.date_input) == 1


def test_a_filter_set_on_costs_survives_a_visit_to_generate(seeded_app):
    at = open_page(make_app(), "costs")
    at.multiselect(key="filter_tiers").select("free").run()
    free = sum((a.cost_usd for r in seeded_app.results if r.tier == "free" for a in r.attempts if a.cost_usd),
               Decimal(0))
    assert metric(at, "Spend") == money(free)
    at.switch_page("pages/generate.py").run()
    assert not at.exception and _filter_widgets(at) == set()
    at.switch_page("pages/costs.py").run()
    assert not at.exception
    assert at.multiselect(key="filter_tiers").value == ["free"]
    assert metric(at, "Spend") == money(free)


def _live_and_demo_log(tmp_path, monkeypatch, *, live: int) -> None:
    from tests.seeded_log import build_results, clock_now, seed_log
    now = clock_now()
    results = build_results(now=now, n=40, days=5, source="demo") + \
        (build_results(now=now, n=live, days=2, seed=8, source="live") if live else [])
    seed_log(tmp_path / "mixed.duckdb", results, now=now)
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "mixed.duckdb"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-only-openai-0123456789")      # a key: live mode


def test_in_live_mode_with_live_traffic_the_filter_starts_on_live_traffic_only(tmp_path, monkeypatch):
    _live_and_demo_log(tmp_path, monkeypatch, live=12)
    at = open_page(make_app(), "costs")
    assert at.multiselect(key="filter_sources").value == ["live"]
    assert metric(at, "Requests") == "12"
    at.multiselect(key="filter_sources").unselect("live").run()        # the user's choice is kept
    assert metric(at, "Requests") == "52"
    at.switch_page("pages/calls.py").run()
    assert at.multiselect(key="filter_sources").value == []


def test_in_live_mode_without_live_traffic_the_filter_shows_every_source(tmp_path, monkeypatch):
    _live_and_demo_log(tmp_path, monkeypatch, live=0)
    at = open_page(make_app(), "costs")
    assert at.multiselect(key="filter_sources").value == []
    assert metric(at, "Requests") == "40"
