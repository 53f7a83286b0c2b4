"""The Sandbox page in real headless Chromium: edit a chain, run A vs B on a preset, see results, export TOML.

Skips only when Chromium is absent and ``CI`` is unset. Saves a screenshot to
``artifacts/screenshots/sandbox.png``.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from taelio_core.policy import parse_policy

ROOT = Path(__file__).resolve().parents[2]
SHOT = ROOT / "artifacts" / "screenshots" / "sandbox.png"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def _chromium() -> str:
    path = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI is set but chromium is not installed")
        pytest.skip("chromium is not installed; set CI=true to make this fail")
    return path


@pytest.fixture()
def sandbox_url(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "TAELIO_POLICY"}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=str(tmp_path / "log.duckdb"))
    log = open(tmp_path / "streamlit.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "pages" / "sandbox.py"),
                             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless",
                             "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "streamlit did not start"
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _drawn(page, charts: bool = False) -> None:  # noqa: ANN001
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=90_000)
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=120_000)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
                           timeout=60_000)
    if charts:
        page.wait_for_function("""() => { const c = document.querySelectorAll('[data-testid="stPlotlyChart"]');
                                  return c.length > 0 && [...c].every(e => e.querySelector('.main-svg')); }""",
                               timeout=60_000)


def test_edit_chain_run_a_vs_b_on_outage_and_export(sandbox_url, tmp_path) -> None:
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        page.goto(sandbox_url)
        _drawn(page)
        # Edit policy B's free/idea chain: first cell of the chains grid is tier; move to entry_1 and type.
        grid = page.get_by_test_id("stDataFrame").first
        # The grid is a canvas: row 1 (free/idea) sits under a 35 px header; entry_1 starts ~105 px in.
        grid.click(position={"x": 180, "y": 52})
        page.wait_for_timeout(400)
        page.keyboard.type("o")  # typing on a selected cell opens its editor (the first keys may be lost)
        page.wait_for_timeout(400)
        page.keyboard.press("Backspace")  # the editor now holds just "o"
        page.keyboard.type("openai:gpt-4.1")
        page.keyboard.press("Enter")
        page.wait_for_timeout(500)
        _drawn(page)
        # Policy A: the current models; fewer requests so the run is quick.
        assert "current" in page.get_by_test_id("stSelectbox").filter(has_text="Policy A").inner_text()
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
        page.get_by_text("B against A, per tier").wait_for(timeout=60_000)
        body = page.get_by_test_id("stMain").inner_text()
        assert "OpenAI down for 30 minutes" in body
        SHOT.parent.mkdir(parents=True, exist_ok=True)
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 8000)})
        page.wait_for_timeout(500)
        _drawn(page, charts=True)
        page.screenshot(path=str(SHOT), full_page=True)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download policy B (TOML)").click()
        path = tmp_path / "b.toml"
        download.value.save_as(path)
        browser.close()
    exported = parse_policy(path.read_text(), source="b.toml")
    assert [e.ref for e in exported.chain("free", "idea")] == ["openai:gpt-4.1", "openai:gpt-4.1-mini",
                                                           "anthropic:claude-haiku-4-5"]
