"""The Calls page's table selection in AppTest: a selected row opens that request, and only that one.

Streamlit keeps a table's selection as row numbers. The page keys the table
by the query it shows, so a row picked before the search or filter changed
can never open whichever request now sits at that row number.
"""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import make_app, open_page
from ui.text import money

pytestmark = pytest.mark.timeout(180)


def _select_row(at: AppTest, row: int) -> AppTest:
    key = at.dataframe[0].key
    assert key and key.startswith("calls_table"), key
    at.session_state[key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    return at.run()


def _text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown).replace("\\", "")


def test_selecting_a_row_opens_that_requests_attempts_trace_prompt_and_output(seeded_app):
    at = open_page(make_app(), "calls")
    shown = at.dataframe[0].value
    row = next(i for i, n in enumerate(shown["n_attempts"]) if n == 2)   # an answer that fell back once
    result = next(r for r in seeded_app.results if r.request_id == shown["request_id"].iloc[row])
    _select_row(at, row)
    assert not at.exception
    attempts = at.dataframe[1].value
    assert list(attempts["provider:model"]) == [f"{a.provider}:{a.model}" for a in result.attempts]
    assert list(attempts["status"]) == ["error", "ok"]
    text = _text(at)
    assert any(result.request_id in c.value for c in at.caption)
    assert result.prompt in text and result.text in text
    assert f"served by `{result.provider}:{result.model}`" in text


def test_a_new_search_clears_the_selection_instead_of_opening_another_request(seeded_app):
    at = open_page(make_app(), "calls")
    _select_row(at, 5)
    assert len(at.dataframe) == 2                       # the table and the selected request's attempts
    at.text_input(key="calls_search").input("<b>bold</b>").run()
    assert not at.exception
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 1
    assert not any(s.value.startswith("Request detail") for s in at.subheader)
    assert "Prompt" not in _text(at)


def test_a_search_that_matches_nothing_says_so(seeded_app):
    at = open_page(make_app(), "calls")
    _select_row(at, 3)
    at.text_input(key="calls_search").input("no request says this").run()
    assert not at.exception
    assert not at.dataframe
    assert any("No request matches" in i.value for i in at.info)


def test_a_page_past_the_last_says_so(seeded_app):
    at = open_page(make_app(), "calls")
    at.number_input(key="calls_page").set_value(9).run()
    assert not at.exception and not at.dataframe
    assert any("Page 9 is past the last page (2)" in i.value for i in at.info)


def test_the_search_matches_the_provider_and_the_model_that_served(seeded_app):
    at = open_page(make_app(), "calls")
    for typed, field, value in (("CLAUDE-3-SONNET", "model", "claude-3-sonnet-20240229"),
                                ("anthropic", "provider", "anthropic")):
        at.text_input(key="calls_search").input(typed).run()
        assert not at.exception
        shown = at.dataframe[0].value
        expected = [r for r in seeded_app.results if getattr(r, field) == value]
        assert expected and len(shown) == len(expected)
        assert set(shown[field]) == {value}


def test_a_failed_request_that_billed_nothing_shows_no_cost_not_zero_dollars(seeded_app):
    at = open_page(make_app(), "calls")
    table = at.dataframe[0].value
    failed = table["status"] == "failed"
    assert failed.any() and (~failed).any()
    assert set(table.loc[failed, "cost"]) == {"–"}
    priced = table.loc[~failed & table["model"].str.startswith("gpt")]
    assert len(priced) and all(c == money(v) and v > 0 for c, v in zip(priced["cost"], priced["cost_usd"]))
    assert "unpriced" in set(table.loc[table["model"] == "gemini-1.5-pro", "cost"])   # tokens, no price
    _select_row(at, int(failed.to_numpy().nonzero()[0][0]))
    assert not at.exception
    assert set(at.dataframe[1].value["cost"]) == {"–"}
    total = next(m.value for m in at.markdown if "served by" in m.value)
    assert "$0" not in total and total.rstrip().endswith("–")


def test_an_id_pasted_while_a_row_is_selected_opens_the_pasted_request(seeded_app):
    at = open_page(make_app(), "calls")
    shown = at.dataframe[0].value
    _select_row(at, 0)
    other = next(r for r in seeded_app.results if r.request_id != shown["request_id"].iloc[0])
    at.text_input(key="calls_open").input(other.request_id).run()
    assert not at.exception
    assert any(other.request_id in c.value for c in at.caption)
    assert not any(shown["request_id"].iloc[0] in c.value for c in at.caption if "request `" in c.value)


def test_an_unknown_id_is_shown_as_typed_without_visible_escapes(seeded_app):
    at = open_page(make_app(), "calls")
    at.text_input(key="calls_open").input("not-a-real_id.1").run()
    warning = next(w.value for w in at.warning if "No request with id" in w.value)
    assert warning == "No request with id `not-a-real_id.1` in the log."
    at.text_input(key="calls_open").input("has`tick").run()
    assert next(w.value for w in at.warning if "No request with id" in w.value) == \
        "No request with id ``has`tick`` in the log."


def test_the_list_shows_each_requests_prompt_and_error_and_a_trace_shows_every_error_whole(seeded_app):
    at = open_page(make_app(), "calls")
    table = at.dataframe[0].value
    by_id = {r.request_id: r for r in seeded_app.results}
    for request_id, prompt, error in zip(table["request_id"], table["prompt"], table["error"]):
        assert prompt == by_id[request_id].prompt[:200]
        assert error == (by_id[request_id].error or "")
    row = int((table["n_attempts"] == 3).to_numpy().nonzero()[0][0])    # two failed attempts before the answer
    _select_row(at, row)
    result = by_id[table["request_id"].iloc[row]]
    whole = [c.value for c in at.code]
    for attempt in result.attempts[:-1]:
        assert any(w.endswith(attempt.error) for w in whole), (attempt.error, whole)


def test_a_search_says_on_the_page_what_it_matches(seeded_app):
    from taelio_core.analytics import SEARCH_MATCHES

    at = open_page(make_app(), "calls")
    assert not any("The search matches" in c.value for c in at.caption)
    at.text_input(key="calls_search").input("anthropic").run()
    assert not at.exception
    assert any(f"The search matches {SEARCH_MATCHES}." in c.value for c in at.caption)
    assert "the start of a request id" in SEARCH_MATCHES
