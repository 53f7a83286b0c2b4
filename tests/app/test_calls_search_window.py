"""The Calls page in AppTest: a search covers the newest slice first, says which, and widens on request.

``TAELIO_SEARCH_STEP=30`` makes a slice of at most 30 requests (the seeded log holds 240 over 20 days).
"""
from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import make_app, open_page
from tests.app.test_health_and_calls_on_postgres import pg_traffic  # noqa: F401 - a fixture

pytestmark = pytest.mark.timeout(180)

COUNT = re.compile(r"([\d,]+) matching requests?")


def _caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if "matching request" in c.value)


def _total(at: AppTest) -> int:
    found = COUNT.search(_caption(at))
    assert found, _caption(at)
    return int(found.group(1).replace(",", ""))


@pytest.fixture
def small_slices(seeded_app, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001
    monkeypatch.setenv("TAELIO_SEARCH_STEP", "30")
    return seeded_app


def test_a_search_names_the_period_it_searched_and_search_older_widens_it(small_slices):
    at = open_page(make_app(), "calls")
    listed = _total(at)                         # every request in the filtered range, no search
    at.text_input(key="calls_search").input("lighthouse").run()   # every seeded prompt says it
    assert not at.exception
    first = _caption(at)
    assert first.startswith("Searched ") and "(UTC)" in first and "in the searched period" in first, first
    assert "today" in first
    newest = _total(at)
    assert 0 < newest <= 30 and len(at.dataframe[0].value) == newest
    older = at.button(key="calls_search_older")
    assert older.label.startswith("Search the ") and older.label.endswith(" before")
    older.click().run()
    assert not at.exception
    assert newest < _total(at) <= newest + 30 and _caption(at) != first
    at.button(key="calls_search_everything").click().run()
    assert not at.exception
    assert _caption(at).startswith("Searched the whole filtered range: ")
    assert _total(at) == listed
    assert not [b for b in at.button if b.key in ("calls_search_older", "calls_search_everything")]


def test_a_new_search_starts_again_at_the_newest_slice(small_slices):
    at = open_page(make_app(), "calls")
    at.text_input(key="calls_search").input("lighthouse").run()
    at.button(key="calls_search_everything").click().run()
    assert _caption(at).startswith("Searched the whole filtered range")
    at.text_input(key="calls_search").input("keeper").run()
    assert not at.exception
    assert "in the searched period" in _caption(at) and _total(at) <= 30


def test_a_bad_step_setting_is_named_in_one_sentence_and_the_search_still_runs(seeded_app, monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("TAELIO_SEARCH_STEP", "lots")
    at = open_page(make_app(), "calls")
    at.text_input(key="calls_search").input("lighthouse").run()
    assert not at.exception
    assert any("TAELIO_SEARCH_STEP must be a whole number" in w.value for w in at.warning)
    # The default slice (250,000 requests) holds the whole seeded log.
    assert _caption(at).startswith("Searched the whole filtered range")


def test_on_postgresql_the_first_slice_and_search_everything_count_what_sql_counts(pg_url, pg_traffic,  # noqa: F811
                                                                                    monkeypatch):  # noqa: ANN001
    import psycopg

    monkeypatch.setenv("TAELIO_SEARCH_STEP", "30")
    at = open_page(make_app(), "calls")
    at.text_input(key="calls_search").input("lighthouse").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "in the searched period" in _caption(at) and 0 < _total(at) <= 30
    at.button(key="calls_search_everything").click().run()
    filters = at.session_state["filters"]
    with psycopg.connect(pg_url) as con:
        expected = con.execute("SELECT count(*) FROM requests WHERE ts >= %s AND ts < %s AND prompt ILIKE %s",
                               [filters.start_ts, filters.end_ts, "%lighthouse%"]).fetchone()[0]
    assert expected == 240 and _total(at) == expected
    assert _caption(at).startswith("Searched the whole filtered range")
