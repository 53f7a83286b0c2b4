"""The Compare page in real headless Chromium: create, run on a 5-row CSV, vote by keyboard, read the verdict."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.conftest import FIVE_ROWS, ROOT
from tests.policies import fast_current_policy_text

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing; CI must install chromium (see .ci/run)")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    policy = tmp_path / "fast.toml"
    policy.write_text(fast_current_policy_text(latency_ms=150))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TAELIO_POLICY": str(policy), "TAELIO_MODE": "demo",
           "DATABASE_URL": str(tmp_path / "browser.duckdb")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "pages" / "compare.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("streamlit did not start: " + proc.stdout.read().decode()[-2000:]) from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _settled(page) -> None:  # noqa: ANN001
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
    page.wait_for_function("!document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=60_000)


def test_create_run_vote_and_read_the_verdict_in_chromium(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright
    csv = tmp_path / "five.csv"
    csv.write_text(FIVE_ROWS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        page.goto(server)
        _settled(page)
        expect(page.get_by_text("No experiments yet")).to_be_visible()
        page.get_by_label("Experiment name").fill("Five premises")
        page.get_by_label("Variant 2 label").fill("terse")
        page.get_by_role("textbox", name="Variant 2 prompt template").fill("In two sentences: {prompt} ({genre})")
        page.get_by_role("textbox", name="Variant 2 prompt template").press("Tab")
        _settled(page)
        page.get_by_text("Upload CSV", exact=True).click()
        _settled(page)
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(csv))
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
        page.screenshot(path=str(Path(os.environ.get("TAELIO_SCREENSHOT_DIR", tmp_path)) / "compare_vote.png"))
        for i, key in enumerate("ABAAT", start=1):
            page.get_by_text("votes this session").click()   # focus the page, not a text box
            page.keyboard.press(key)                      # the keyboard shortcuts, as a fast voter uses them
            expect(page.get_by_text(f"{i} votes this session")).to_be_visible()
            _settled(page)
        expect(page.get_by_text("Recorded: a tie.")).to_be_visible()
        page.get_by_role("tab", name="Leaderboard").click()
        _settled(page)
        expect(page.get_by_text("Votes: ")).to_be_visible()
        expect(page.get_by_text("Leaderboard (Bradley–Terry from votes")).to_be_visible()
        page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg')
        verdict = page.get_by_text("Votes: ").inner_text()
        assert "n = 4" in verdict and "(plus 1 tie)" in verdict
        shot = Path(os.environ.get("TAELIO_SCREENSHOT_DIR", tmp_path)) / "compare_leaderboard.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        chart = shot.with_name("compare_quality_vs_cost.png")
        page.locator('[data-testid="stPlotlyChart"]').screenshot(path=str(chart))
        assert chart.stat().st_size > 5_000
        browser.close()
