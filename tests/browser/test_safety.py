"""Secrets and untrusted output in a real browser.

A live-mode dashboard whose OpenAI provider is the local fake server, with a
planted key: model output full of ``<script>``, raw HTML and a remote markdown
image must render as inert text (no element created, no request to the remote
host), and the key must appear nowhere in any page's HTML.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.harness import screenshot, streamlit_server, wait_drawn

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

PLANTED = "sk-planted-secret-7f3a9c2e41d8b6"
HOSTILE = ('Here it is <script>window.__pwned = 1</script> <img src="http://evil.example/x.png" '
           'onerror="window.__pwned = 2"> <b>bold?</b> ![tracker](http://evil.example/pixel.png) '
           '<iframe src="http://evil.example/frame"></iframe> The end.')


def test_hostile_output_is_inert_and_the_key_never_reaches_the_page(fake_server, page, tmp_path: Path,
                                                                  screenshots: Path) -> None:
    fake_server.set_text("openai", HOSTILE)
    fake_server.expected_keys["openai"] = PLANTED
    env = fake_server.env(OPENAI_API_KEY=PLANTED)
    env.update({"TAELIO_MODE": "live", "DATABASE_URL": str(tmp_path / "safety.duckdb")})
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    with streamlit_server(env, cwd=tmp_path) as (url, _proc):
        page.goto(url + "/")
        wait_drawn(page)
        page.get_by_label("Prompt").fill("A lighthouse keeper")
        page.get_by_role("button", name="Generate").click()
        page.wait_for_selector("text=Routing trace: story", timeout=120_000)
        wait_drawn(page, timeout_ms=120_000)
        main = page.locator('[data-testid="stMain"]')
        text = main.inner_text()
        # The answer is shown, as text: the tags are visible characters, not elements.
        assert "<script>window.__pwned = 1</script>" in text and "![tracker](http://evil.example/pixel.png)" in text
        assert main.locator("script, iframe, b").count() == 0
        assert main.locator('img[src*="evil.example"]').count() == 0
        assert page.evaluate("() => window.__pwned === undefined")
        assert [u for u in requested if "evil.example" in u] == []
        # The request really went through the SDK with the planted key ...
        assert any(r.key == PLANTED for r in fake_server.requests)
        screenshot(page, screenshots / "hostile-output.png")
        # ... and the key is on no page.
        for path in ("/", "/costs", "/health", "/calls"):
            page.goto(url + path)
            wait_drawn(page)
            assert PLANTED not in page.content(), f"key in the HTML of {path}"
            assert PLANTED[-12:] not in page.content()
