"""The dashboard in a real headless Chromium, served by ``streamlit run app.py`` on a seeded log, demo mode.

Every page is opened and waited on until fully drawn; no exception box may
appear, the key texts must be there, and one generation goes through the UI.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from tests.browser.harness import screenshot, streamlit_server, wait_drawn
from tests.seeded_log import clock_now, seed_log

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, chromium: str):
    home = tmp_path_factory.mktemp("app")
    seeded = seed_log(home / "calls.duckdb", now=clock_now())
    with streamlit_server({"DATABASE_URL": str(seeded.path)}, cwd=home) as (url, _proc):
        yield url, seeded


def _no_exception(page) -> None:  # noqa: ANN001
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, boxes.first.inner_text()


def _spend_in_sql(path: Path) -> float:
    with DuckDBCallLog(path) as log:
        return float(log.query("SELECT sum(cost_usd)::DOUBLE AS s FROM attempts")["s"].iloc[0])


def test_every_page_draws_fully_without_errors(server, page, screenshots: Path):
    url, seeded = server
    # First request to a fresh server goes straight to a page URL: it must still run inside app.py.
    page.goto(url + "/costs")
    wait_drawn(page)
    _no_exception(page)
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    assert "Costs & budgets" in sidebar and "Demo mode" in sidebar and "240 requests logged" in sidebar
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert "Spend by provider × tier" in main and "Budgets this month" in main
    spend = re.search(r"Spend\s*\n\s*\$([0-9.,]+)", main)
    # The page shows a dollar or more in cents (taelio_core.formatting.money): equal to the SQL sum, rounded.
    assert spend and float(spend.group(1).replace(",", "")) == pytest.approx(_spend_in_sql(seeded.path), abs=0.005)
    assert page.locator('[data-testid="stPlotlyChart"] .main-svg').count() >= 6
    screenshot(page, screenshots / "costs.png")

    for path, texts in (("/health", ["Provider health", "Latency percentiles", "Fallback rate per tier"]),
                        ("/calls", ["Calls", "240 matching requests"]),
                        ("/", ["Generate", "Prompt", "The free tier routes automatically."])):
        page.goto(url + path)
        wait_drawn(page)
        _no_exception(page)
        main = page.locator('[data-testid="stMain"]').inner_text()
        for text in texts:
            assert text in main, f"{text!r} missing on {path}"
        screenshot(page, screenshots / f"{path.strip('/') or 'generate'}.png")


def test_one_generation_in_demo_mode_shows_the_trace(server, page, screenshots: Path):
    url, _ = server
    page.goto(url + "/")
    wait_drawn(page)
    page.get_by_label("Prompt").fill("A lighthouse keeper finds a message in a bottle")
    page.get_by_label("Genre").fill("Mystery")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_selector("text=Routing trace: story", timeout=120_000)
    wait_drawn(page, timeout_ms=120_000)
    _no_exception(page)
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert "[simulated" in main and "Routing trace: idea" in main
    assert "Total for the full flow" in main and "under parent id" in main
    assert "served by" in main and "Chain for tier" in main
    assert main.count("request ") >= 2
    screenshot(page, screenshots / "generate-trace.png")
    # The new requests reach the other pages without a restart.
    page.goto(url + "/calls")
    wait_drawn(page)
    assert re.search(r"24[1-9] matching requests", page.locator('[data-testid="stMain"]').inner_text())
