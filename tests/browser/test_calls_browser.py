"""The Calls page in a real headless Chromium: click a row, read that request's attempts, trace, prompt and output.

The table is a canvas (Glide Data Grid), so a row is clicked by position: a
35 px header, then 35 px rows, with the selection checkbox in the first column.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.harness import screenshot, streamlit_server, wait_drawn
from tests.seeded_log import clock_now, seed_log

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

HEADER_PX = ROW_PX = 35


def _click_row(page, row: int) -> None:  # noqa: ANN001 - playwright Page
    grid = page.get_by_test_id("stDataFrame").first
    grid.click(position={"x": 18, "y": HEADER_PX + ROW_PX * row + ROW_PX // 2})
    page.wait_for_selector("text=Request detail", timeout=60_000)
    wait_drawn(page)


def _search(page, text: str, shows: str) -> str:  # noqa: ANN001 - playwright Page
    """Type ``text`` in the search box, wait for ``shows`` on the page; the main area's text."""
    search = page.get_by_role("textbox", name="Search")
    search.fill(text)
    search.press("Enter")
    page.wait_for_selector(f"text={shows}", timeout=60_000)
    wait_drawn(page)
    return page.get_by_test_id("stMain").inner_text()


def test_clicking_a_row_opens_its_attempts_trace_prompt_and_output(tmp_path: Path, chromium: str, page,
                                                                    screenshots: Path):
    seeded = seed_log(tmp_path / "calls.duckdb", now=clock_now())
    newest = sorted(seeded.results, key=lambda r: (-r.started_at.timestamp(), r.request_id))
    row = next(i for i, r in enumerate(newest) if r.ok and r.fallback_depth == 1)
    wanted = newest[row]
    with streamlit_server({"DATABASE_URL": str(seeded.path)}, cwd=tmp_path) as (url, _proc):
        page.goto(url + "/calls")
        wait_drawn(page)
        assert "Request detail" not in page.get_by_test_id("stMain").inner_text()
        _click_row(page, row)
        main = page.get_by_test_id("stMain").inner_text()
        assert page.get_by_test_id("stException").count() == 0
        assert f"request {wanted.request_id}" in main
        chain = " → ".join(f"{a.provider}:{a.model}" for a in wanted.attempts)
        assert all(part in main for part in chain.split(" → "))
        assert f"served by {wanted.provider}:{wanted.model}" in main and "2 attempt(s)" in main
        assert wanted.prompt in main and wanted.text in main
        # The attempts table: one failed attempt with its error in plain words, then the answer.
        attempts = page.get_by_test_id("stDataFrame").nth(1)
        assert attempts.is_visible()
        screenshot(page, screenshots / "calls-detail.png")

        # Another row replaces the detail; a new search clears the selection instead of opening another request.
        failed = next(i for i, r in enumerate(newest) if not r.ok)
        _click_row(page, failed)
        main = page.get_by_test_id("stMain").inner_text()
        assert f"request {newest[failed].request_id}" in main and "served by nobody" in main
        assert "Every provider failed" in main
        main = _search(page, "no request says this", "No request matches")
        assert "Request detail" not in main and page.get_by_test_id("stException").count() == 0


def test_a_search_says_which_period_it_searched_and_search_everything_widens_it(tmp_path: Path, chromium: str, page,
                                                                               screenshots: Path):
    seed_log(tmp_path / "calls.duckdb", now=clock_now())
    env = {"DATABASE_URL": str(tmp_path / "calls.duckdb"), "TAELIO_SEARCH_STEP": "30"}
    with streamlit_server(env, cwd=tmp_path) as (url, _proc):
        page.goto(url + "/calls")
        wait_drawn(page)
        main = _search(page, "lighthouse", "in the searched period")
        assert "Searched " in main and "(UTC)" in main and page.get_by_test_id("stException").count() == 0
        assert page.get_by_role("button", name="Search the ").count() == 1
        screenshot(page, screenshots / "calls-search-window.png")
        page.get_by_role("button", name="Search everything").click()
        page.wait_for_selector("text=Searched the whole filtered range", timeout=60_000)
        wait_drawn(page)
        assert page.get_by_role("button", name="Search everything").count() == 0
        screenshot(page, screenshots / "calls-search-everything.png")
