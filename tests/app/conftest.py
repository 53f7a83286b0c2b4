"""Page tests run the real engine on a fast, fully simulated copy of the current policy."""
from __future__ import annotations

from pathlib import Path

import pytest

from taelio_core.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
FIVE_ROWS = ("prompt,genre\nA lighthouse keeper finds a message,Mystery\nA robot learns to cook,Comedy\n"
             "The last train out of the city,Thriller\nA garden that grows memories,Fantasy\n"
             "Two rival bakers share a kitchen,Romance\n")


def fast_policy_text(latency_ms: int = 5) -> str:
    """The current policy with fast, error-free simulator profiles (used with TAELIO_MODE=demo, so the
    real kinds keep their catalogue prices)."""
    text = load_policy("current").text
    for ms in ("700", "1400", "1200"):
        text = text.replace(f"latency_ms = {ms}", f"latency_ms = {latency_ms}")
    for rates in ("rate_limited = 0.03, unavailable = 0.02, timeout = 0.01",
                  "rate_limited = 0.04, unavailable = 0.02, timeout = 0.01",
                  "rate_limited = 0.02, unavailable = 0.03, timeout = 0.01"):
        text = text.replace(rates, "")
    return text


@pytest.fixture
def page_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    policy = tmp_path / "fast.toml"
    policy.write_text(fast_policy_text())
    monkeypatch.setenv("TAELIO_POLICY", str(policy))
    monkeypatch.setenv("TAELIO_MODE", "demo")
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "page.duckdb"))
    return tmp_path
