"""Every page in a real Chromium at three data sizes: an empty log, one hour of traffic, and a month (28 days: inside the 30-day default filter).

Each page is drawn fully, shows no exception, says what the size calls for, and is saved as a screenshot
(``artifacts/screenshots/sizes/<size>-<page>.png``) to look at.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.harness import screenshot, streamlit_server, wait_drawn
from tests.seeded_log import build_results, clock_now, seed_log

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]

PAGES = ("generate", "costs", "health", "calls", "compare", "sandbox")
# What each analytics page must say at each size (besides its title).
EXPECT = {
    "empty": {"costs": "Nothing logged yet", "health": "Nothing logged yet", "calls": "Nothing logged yet"},
    "hour": {"costs": "one point per 5 minutes", "health": "one point per 5 minutes", "calls": "60 matching requests"},
    "month": {"costs": "one point per day", "health": "one point per day", "calls": "600 matching requests"},
}


def _seed(size: str, path: Path) -> None:
    now = clock_now()
    if size == "empty":
        seed_log(path, [], now=now)
    elif size == "hour":
        seed_log(path, build_results(now=now, n=60, days=1 / 24), now=now)
    else:
        seed_log(path, build_results(now=now, n=600, days=28), now=now)


@pytest.fixture(scope="module", params=list(EXPECT))
def sized_server(request, tmp_path_factory: pytest.TempPathFactory, chromium: str):
    home = tmp_path_factory.mktemp(f"size-{request.param}")
    _seed(request.param, home / "calls.duckdb")
    with streamlit_server({"DATABASE_URL": str(home / "calls.duckdb")}, cwd=home) as (url, _proc):
        yield request.param, url


def test_every_page_at_this_data_size_draws_fully_and_says_what_it_shows(sized_server, page, screenshots: Path):
    size, url = sized_server
    for name in PAGES:
        page.goto(f"{url}/{'' if name == 'generate' else name}")
        wait_drawn(page)
        boxes = page.locator('[data-testid="stException"]')
        assert boxes.count() == 0, f"{size}/{name}: {boxes.first.inner_text()}"
        main = page.locator('[data-testid="stMain"]').inner_text()
        expected = EXPECT[size].get(name)
        assert expected is None or expected in main, f"{size}/{name}: {expected!r} not on the page"
        if size == "hour" and name in ("costs", "health"):
            assert "23:59:59" not in main
        screenshot(page, screenshots / "sizes" / f"{size}-{name}.png")
