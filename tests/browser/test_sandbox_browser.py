"""The Sandbox page in real headless Chromium: edit a chain, run A vs B on a preset, see results, export TOML.

Served by ``streamlit run app.py`` (``tests/browser/harness.py``) and opened at
``/sandbox``, as a user would. Skips only when Chromium is absent and ``CI``
is unset. Saves a screenshot to ``artifacts/screenshots/sandbox.png``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from taelio_core.config.policy_parser import parse_policy
from tests.browser.harness import screenshot, streamlit_server, wait_drawn

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture()
def sandbox_url(tmp_path: Path, chromium: str):
    # The dashboard runs the built-in "current" policy: the Sandbox's Policy A is that running policy.
    with streamlit_server({"DATABASE_URL": str(tmp_path / "log.duckdb"), "TAELIO_POLICY": "current"},
                          cwd=tmp_path) as (url, _proc):
        yield url + "/sandbox"


def _drawn(page, charts: bool = False) -> None:  # noqa: ANN001 - playwright Page
    wait_drawn(page, timeout_ms=120_000, charts=charts)
    if charts:
        page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=60_000)


def test_edit_chain_run_a_vs_b_on_outage_and_export(sandbox_url, page, screenshots: Path, tmp_path: Path) -> None:
    page.goto(sandbox_url)
    _drawn(page)
    # Edit policy B's free/idea chain. The grid is a canvas: row 1 (free/idea) sits under a 35 px header,
    # and entry_1 spans ~170-370 px (beside the sidebar, 1400 px wide).
    grid = page.get_by_test_id("stDataFrame").first
    grid.dblclick(position={"x": 260, "y": 52})   # a double click opens the cell's editor
    editor = page.locator("#portal textarea, #portal input").first
    editor.wait_for(timeout=30_000)
    editor.fill("openai:gpt-4.1")
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)
    _drawn(page)
    # Policy A: the running policy, by its name; fewer requests so the run is quick.
    policy_a = page.get_by_test_id("stSelectbox").filter(has_text="Policy A")
    assert "current (the running policy)" in (policy_a.inner_text() + " " + policy_a.locator("input").input_value())
    requests = page.get_by_label("Requests")
    requests.fill("3000")
    requests.press("Enter")
    _drawn(page)
    assert not page.get_by_test_id("stAlertContentError").count(), page.get_by_test_id("stAlert").all_inner_texts()
    scenario = page.get_by_test_id("stSelectbox").filter(has_text="Scenario")
    scenario.click()
    page.keyboard.type("OpenAI down")
    page.keyboard.press("Enter")
    _drawn(page)
    page.get_by_role("button", name="Run A vs B").click()
    _drawn(page, charts=True)
    page.get_by_text("B (current-b) against A (current), per tier").wait_for(timeout=60_000)
    body = page.get_by_test_id("stMain").inner_text()
    assert "OpenAI down for 30 minutes" in body
    screenshot(page, screenshots / "sandbox.png")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download policy B (TOML)").click()
    path = tmp_path / "b.toml"
    download.value.save_as(path)
    exported = parse_policy(path.read_text(), source="b.toml")
    assert exported.name == "current-b" and download.value.suggested_filename == "current-b.toml"
    assert [e.ref for e in exported.chain("free", "idea")] == ["openai:gpt-4.1", "openai:gpt-4.1-mini",
                                                           "anthropic:claude-haiku-4-5"]
