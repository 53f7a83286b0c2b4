"""A newcomer's first run in a real Chromium: an empty log, demo mode, Load demo data, true charts."""
from __future__ import annotations

from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from tests.browser.harness import screenshot, streamlit_server, wait_drawn

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def test_empty_log_offers_demo_data_and_loading_it_draws_the_charts(tmp_path: Path, chromium: str, page,
                                                                       screenshots: Path):
    pytest.importorskip("taelio_core.demo", reason="the demo generator lands with the call-log branch")
    db = tmp_path / "fresh.duckdb"
    with streamlit_server({"DATABASE_URL": str(db)}, cwd=tmp_path) as (url, _proc):
        page.goto(url + "/health")
        wait_drawn(page)
        main = page.locator('[data-testid="stMain"]')
        assert "Nothing logged yet" in main.inner_text()
        assert page.locator('[data-testid="stPlotlyChart"]').count() == 0
        screenshot(page, screenshots / "empty-health.png")
        main.get_by_role("button", name="Load demo data").click()
        # While it loads, the page shows the progress, not "Nothing logged yet".
        page.wait_for_selector('[data-testid="stProgress"]', timeout=60_000)
        assert "Nothing logged yet" not in main.inner_text()
        page.wait_for_selector("text=Latency percentiles", timeout=180_000)
        wait_drawn(page, timeout_ms=120_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        # Plotly draws its SVG after Streamlit has finished the script: on a loaded machine, a moment later.
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= 4", timeout=60_000)
        with DuckDBCallLog(db) as log:
            n = log.count_requests(source="demo")
        assert n > 1000
        assert f"{n:,} requests logged" in page.locator('[data-testid="stSidebar"]').inner_text()
        screenshot(page, screenshots / "health-demo.png")
        page.goto(url + "/costs")
        wait_drawn(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        screenshot(page, screenshots / "costs-demo.png")

        # The sidebar still offers demo data, and removes what was loaded; the page is empty again.
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_by_role("button", name="Load demo data").count() == 1
        sidebar.get_by_role("button", name=f"Remove demo data ({n:,})").click()
        page.wait_for_selector("text=Removed", timeout=60_000)
        wait_drawn(page)
        screenshot(page, screenshots / "demo-removed.png")
        assert "Nothing logged yet" in main.inner_text()
        with DuckDBCallLog(db) as log:
            assert log.count_requests() == 0
