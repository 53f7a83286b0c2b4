"""AppTest fixtures: the whole app (``app.py`` and its navigation) against a seeded DuckDB file.

The engine is configured the way a user would: ``DATABASE_URL`` names the
log, ``TAELIO_POLICY`` a policy file, key variables decide the mode. A test
may instead put a ready engine in ``st.session_state["taelio_engine"]``.
"""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.seeded_log import Seeded, build_results, seed_log

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"

# Three simulated providers; the first one in every chain always fails, so every request falls back.
FAILING_FIRST_POLICY = """
name = "apptest"
[resilience]
max_retries = 0          # these tests follow the chain order, not retries
[providers.alpha]
kind = "simulated"
[providers.beta]
kind = "simulated"
[tasks.idea]
label = "Story idea"
user = "Premise: {prompt} ({genre}, {tone})"
[tasks.story]
label = "Story"
user = "Idea: {idea}"
needs = "idea"
[tiers.free]
label = "Free"
[tiers.pro]
label = "Pro"
allow_provider_override = true
[routes.free]
idea = ["alpha:a-1", "beta:b-1"]
story = ["alpha:a-1", "beta:b-1"]
[routes.pro]
idea = ["beta:b-1", "alpha:a-1"]
story = ["beta:b-1", "alpha:a-1"]
[simulator.alpha]
latency_ms = 1
ttft_ms = 1
error_rates = { unavailable = 1.0 }
[simulator.beta]
latency_ms = 1
ttft_ms = 1
"""


def make_app(**session: object) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    for key, value in session.items():
        at.session_state[key] = value
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    at.run()
    if page != "generate":
        at.switch_page(f"pages/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture()
def seeded_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    """A log whose traffic ends now (so it is inside the sidebar's default dates), named by DATABASE_URL."""
    now = datetime.now(UTC).replace(microsecond=0)
    seeded = seed_log(tmp_path / "calls.duckdb", build_results(now=now, days=20), now=now)
    monkeypatch.setenv("DATABASE_URL", str(seeded.path))
    return seeded


def metric(at: AppTest, label: str) -> str:
    found = [m for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}; have {[m.label for m in at.metric]}"
    return found[0].value
