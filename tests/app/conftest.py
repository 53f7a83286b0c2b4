"""AppTest fixtures: the whole app (``app.py`` and its navigation) against a seeded DuckDB file.

The engine is configured the way a user would: ``DATABASE_URL`` names the
log, ``TAELIO_POLICY`` a policy file, key variables decide the mode. A test
may instead put a ready engine in ``st.session_state["taelio_engine"]``.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.policies import fast_current_policy_text, policy_text
from tests.seeded_log import Seeded, build_results, clock_now, seed_log

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"

def failing_first_policy(*, beta_errors: dict[str, float] | None = None,
                         breakers: dict[str, object] | None = None) -> str:
    """Two simulated providers; alpha, first in the free tier's chains, always fails, so free requests fall back.

    ``beta_errors`` makes beta fail too (e.g. ``{"rate_limited": 1.0}``); ``breakers`` adds a [breakers] table.
    """
    chains = {"idea": ["alpha:a-1", "beta:b-1"], "story": ["alpha:a-1", "beta:b-1"]}
    beta = {"latency_ms": 1, "ttft_ms": 1} | ({"error_rates": beta_errors} if beta_errors else {})
    return policy_text(
        name="apptest", providers={"alpha": "simulated", "beta": "simulated"},
        resilience={"max_retries": 0},      # these tests follow the chain order, not retries
        breakers=breakers,
        tasks={"idea": {"label": "Story idea", "user": "Premise: {prompt} ({genre}, {tone})"},
               "story": {"label": "Story", "user": "Idea: {idea}", "needs": "idea"}},
        tiers={"free": {"label": "Free"}, "pro": {"label": "Pro", "allow_provider_override": True}},
        routes={"free": chains, "pro": {task: chain[::-1] for task, chain in chains.items()}},
        simulator={"alpha": {"latency_ms": 1, "ttft_ms": 1, "error_rates": {"unavailable": 1.0}}, "beta": beta})


FAILING_FIRST_POLICY = failing_first_policy()


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
    now = clock_now()
    seeded = seed_log(tmp_path / "calls.duckdb", build_results(now=now, days=20), now=now)
    monkeypatch.setenv("DATABASE_URL", str(seeded.path))
    return seeded


def metric(at: AppTest, label: str) -> str:
    found = [m for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}; have {[m.label for m in at.metric]}"
    return found[0].value


# ---- the Compare page -------------------------------------------------------------
FIVE_ROWS = ("prompt,genre\nA lighthouse keeper finds a message,Mystery\nA robot learns to cook,Comedy\n"
             "The last train out of the city,Thriller\nA garden that grows memories,Fantasy\n"
             "Two rival bakers share a kitchen,Romance\n")


@pytest.fixture
def page_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    policy = tmp_path / "fast.toml"
    policy.write_text(fast_current_policy_text())
    monkeypatch.setenv("TAELIO_POLICY", str(policy))
    monkeypatch.setenv("TAELIO_MODE", "demo")
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "page.duckdb"))
    return tmp_path
