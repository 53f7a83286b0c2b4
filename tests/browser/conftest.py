"""Real-browser fixtures: Debian's Chromium through Playwright, and a Streamlit server on a seeded log.

The tests skip only when Chromium is absent and ``CI`` is not set; under
``CI=true`` a missing browser fails them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.harness import ROOT, chromium_path

SCREENSHOTS = ROOT / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI is set but chromium is not installed: the browser tests must run in CI")
        pytest.skip("chromium is not installed (apt-get install chromium); set CI=true to make this fail")
    return path


@pytest.fixture(scope="module")
def playwright_instance(chromium: str):
    # Module-scoped: Playwright's sync API keeps an asyncio loop running on the main thread while it is
    # open, and tests elsewhere call asyncio.run(), which refuses to start inside a running loop.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_instance):
    from tests.browser.harness import launch

    b = launch(playwright_instance)
    yield b
    b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    yield p
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
