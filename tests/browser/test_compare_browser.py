"""The Compare page in real headless Chromium: create, run on a 5-row CSV, vote by keyboard, read the verdict.

Served by ``streamlit run app.py`` (``tests/browser/harness.py``) and opened at ``/compare``.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.conftest import FIVE_ROWS
from tests.browser.harness import streamlit_server
from tests.policies import fast_current_policy_text

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def server(tmp_path: Path, chromium: str) -> Iterator[str]:
    policy = tmp_path / "fast.toml"
    policy.write_text(fast_current_policy_text(latency_ms=150))
    env = {"TAELIO_POLICY": str(policy), "TAELIO_MODE": "demo", "DATABASE_URL": str(tmp_path / "browser.duckdb")}
    with streamlit_server(env, cwd=tmp_path) as (url, _proc):
        yield url + "/compare"


def _settled(page) -> None:  # noqa: ANN001
    """The app is idle, and still idle a moment later: an input's rerun may start only after the last check
    (on a loaded machine a click that lands during that rerun is dropped, as it would be for a user)."""
    for _ in range(2):
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
        page.wait_for_function("!document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=60_000)
        page.wait_for_timeout(250)


def _record_reruns(page) -> list[str]:  # noqa: ANN001
    """The fragment id of every rerun the browser asks for ('' for a whole-page rerun), from its websocket."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    seen: list[str] = []

    def on_frame(payload: bytes | str) -> None:
        if isinstance(payload, bytes):
            msg = BackMsg.FromString(payload)
            if msg.WhichOneof("type") == "rerun_script":
                seen.append(msg.rerun_script.fragment_id)

    page.on("websocket", lambda ws: ws.on("framesent", on_frame))
    return seen


def test_create_run_vote_and_read_the_verdict_in_chromium(server: str, page, screenshots: Path,
                                                          tmp_path: Path) -> None:
    from playwright.sync_api import expect
    csv = tmp_path / "five.csv"
    csv.write_text(FIVE_ROWS)
    page.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    reruns = _record_reruns(page)
    page.goto(server)
    _settled(page)
    expect(page.get_by_text("No experiments yet")).to_be_visible()
    page.get_by_label("Experiment name").fill("Five premises")
    page.get_by_label("Variant 2 label").fill("terse")
    page.get_by_role("textbox", name="Variant 2 prompt template").fill("In two sentences: {prompt} ({genre})")
    page.get_by_role("textbox", name="Variant 2 prompt template").press("Tab")
    _settled(page)
    page.get_by_role("textbox", name="Checks on every answer (optional, one per line)").fill(
        "contains: gemini\nmax_length: 2000")
    page.get_by_role("textbox", name="Checks on every answer (optional, one per line)").press("Tab")
    _settled(page)
    page.get_by_text("Upload CSV", exact=True).click()
    _settled(page)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(csv))
    expect(page.get_by_text(csv.name)).to_be_visible()
    _settled(page)
    page.get_by_role("button", name="Create experiment").click()
    expect(page.get_by_text("2 variants × 5 inputs")).to_be_visible()
    _settled(page)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text("All cells done.")).to_be_visible(timeout=90_000)
    _settled(page)
    page.get_by_role("tab", name="Vote (blind)").click()
    _settled(page)
    expect(page.get_by_text("0 votes this session")).to_be_visible()
    page.screenshot(path=str(screenshots / "compare_vote.png"))
    for i, key in enumerate("ABAAT", start=1):
        page.get_by_text("votes this session").click()   # focus the page, not a text box
        reruns.clear()
        page.keyboard.press(key)                      # the keyboard shortcuts, as a fast voter uses them
        expect(page.get_by_text(f"{i} votes this session")).to_be_visible()
        _settled(page)
        # A vote reruns only the voting fragment, never the whole page (estimate, tables, statistics).
        assert reruns and all(fragment for fragment in reruns), f"vote {i} reran the whole page: {reruns}"
    expect(page.get_by_text("Recorded: a tie.")).to_be_visible()
    page.get_by_role("tab", name="Leaderboard").click()
    _settled(page)
    expect(page.get_by_text("Votes: ")).to_be_visible()
    expect(page.get_by_text("Leaderboard (Bradley–Terry from votes")).to_be_visible()
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg')
    verdict = page.get_by_text("Votes: ").inner_text()
    # 4 decided votes can never pass the exact sign test (p >= 0.125): no winner yet, and it says why
    assert "Not decided yet" in verdict and "n = 4" in verdict and "(plus 1 tie)" in verdict
    shot = screenshots / "compare_leaderboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    chart = shot.with_name("compare_quality_vs_cost.png")
    page.locator('[data-testid="stPlotlyChart"]').screenshot(path=str(chart))
    assert chart.stat().st_size > 5_000
    page.get_by_role("tab", name="Matrix").click()
    _settled(page)
    expect(page.get_by_text("Per variant")).to_be_visible()
    expect(page.get_by_text("Checks: contains: gemini, max_length: 2000.")).to_be_visible()
    matrix = screenshots / "compare_matrix.png"
    page.screenshot(path=str(matrix), full_page=True)
    assert matrix.stat().st_size > 10_000
