"""Start ``streamlit run app.py`` on a free loopback port and drive it with Debian's Chromium.

Shared by the browser tests and ``benchmarks/bench_pages.py``. A page counts
as fully drawn when the script has stopped running, no skeleton is left, and
every Plotly chart has drawn its SVG.
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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
KEY_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "TAELIO_MODE",
            "TAELIO_POLICY", "DATABASE_URL", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL")


def chromium_path() -> str | None:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(env: Mapping[str, str], *, cwd: Path | None = None, timeout: float = 90.0
                     ) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yields (base URL, process); the server is stopped (by its own pid) on exit."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    log = open(Path(cwd or ROOT) / f"streamlit-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=str(cwd or ROOT), env=full_env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}: see {log.name}")
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("streamlit did not start in time")
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def wait_drawn(page, *, timeout_ms: float = 60_000, charts: bool = True, settle_ms: int = 150) -> None:  # noqa: ANN001 - playwright Page
    """Wait until Streamlit has finished the run and every chart has drawn.

    Every dashboard page starts with a title, so a drawn ``h1`` in the main block rules out the
    moment before the first run starts (when the app is also "not running").
    """
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
                           timeout=timeout_ms)
    if charts:
        page.wait_for_function(
            """() => { const c = document.querySelectorAll('[data-testid="stPlotlyChart"]');
                       return [...c].every(e => e.querySelector('.main-svg')); }""", timeout=timeout_ms)
    if settle_ms:
        page.wait_for_timeout(settle_ms)  # a rerun may have started after the last paint
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)


def screenshot(page, path: Path | str) -> None:  # noqa: ANN001 - playwright Page
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to fit it first."""
    height = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]');
                                      return m ? m.scrollHeight : document.body.scrollHeight; }""")
    width = page.viewport_size["width"] if page.viewport_size else 1400
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 8000)})
    page.mouse.move(width - 20, min(int(height), 7960))  # blank main area: a hovered chart shows a toolbar
    page.wait_for_timeout(300)
    wait_drawn(page)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": 1000})


def launch(playwright):  # noqa: ANN001, ANN201
    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium is not installed")
    return playwright.chromium.launch(executable_path=path, args=LAUNCH_ARGS, headless=True)
