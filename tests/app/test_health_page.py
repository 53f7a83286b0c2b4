"""The Health page under AppTest: Test a provider on the model the user picks; the sidebar counts it at once."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from tests.app.conftest import make_app, open_page
from tests.policies import policy_text

pytestmark = pytest.mark.timeout(180)

TWO_MODELS = policy_text(
    name="twomodels", providers={"alpha": "simulated", "beta": "simulated"},
    tasks={"idea": {"user": "Premise: {prompt}"}},
    routes={"free": {"idea": ["alpha:a-1", "beta:b-1"]}, "pro": {"idea": ["alpha:a-2", "alpha:a-1"]}},
    simulator={"alpha": {"latency_ms": 1, "ttft_ms": 1}, "beta": {"latency_ms": 1, "ttft_ms": 1}})


@pytest.fixture()
def health(tmp_path: Path, monkeypatch):
    policy = tmp_path / "two.toml"
    policy.write_text(TWO_MODELS)
    monkeypatch.setenv("TAELIO_POLICY", str(policy))
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "probe.duckdb"))
    return open_page(make_app(), "health")


def _sidebar_status(at) -> str:  # noqa: ANN001
    return next(c.value for c in at.sidebar.caption if "logged" in c.value)


def test_test_a_provider_offers_every_model_of_that_provider_and_probes_the_one_picked(health, tmp_path):
    at = health
    at.selectbox(key="probe_provider").select("alpha").run()
    model = at.selectbox(key="probe_model_alpha_idea")
    assert model.options == ["a-1", "a-2"]
    model.select("a-2").run()
    next(b for b in at.button if b.label == "Test provider").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with DuckDBCallLog(tmp_path / "probe.duckdb") as log:
        logged = log.query("SELECT source, provider, model FROM attempts")
    assert logged.to_dict("records") == [{"source": "test", "provider": "alpha", "model": "a-2"}]


def test_the_sidebar_counts_a_request_in_the_run_that_logged_it_in_the_singular(health):
    at = health
    assert "0 requests logged" in _sidebar_status(at)
    next(b for b in at.button if b.label == "Test provider").click().run()
    assert not at.exception
    assert "1 request logged" in _sidebar_status(at)       # not one interaction behind, not "1 requests"


def test_with_redis_unreachable_the_page_says_since_when_and_that_hard_budgets_refuse(tmp_path, monkeypatch):
    from tests.servers import free_port
    policy = tmp_path / "shared.toml"
    policy.write_text(TWO_MODELS + "\n[budgets.tier.free]\nmonthly = 5\nhard = true\n")
    monkeypatch.setenv("TAELIO_POLICY", str(policy))
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "shared.duckdb"))
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")      # nothing listens there
    at = open_page(make_app(), "health")
    assert not at.exception
    warning = next(w.value for w in at.warning if "Shared state" in w.value)
    assert re.match(r"Shared state unavailable since \d\d:\d\d UTC \(Redis at redis://127\.0\.0\.1:\d+/0\)", warning)
    assert "Calls a hard budget covers are refused until it is back" in warning
