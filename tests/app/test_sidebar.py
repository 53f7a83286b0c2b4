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
