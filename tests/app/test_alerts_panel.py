"""Costs and Health list the alerts that went out, with the time each was sent and only the webhook's host."""
from __future__ import annotations

from pathlib import Path

import pytest

from taelio_core.monitoring.alerts import WEBHOOK_ENV
from tests.app.conftest import make_app, open_page
from tests.seeded_log import build_results, clock_now, seed_log
from tests.test_alerts import SECRET_PATH, _tiny_budget_policy, hook  # noqa: F401 - the local webhook fixture


def _alerts_table(at):  # noqa: ANN001, ANN202
    tables = [t.value for t in at.table if list(t.value.columns) == ["Sent", "Alert", "To"]]
    assert tables, "no alerts table on the page"
    return tables[0]


def test_costs_shows_budget_alerts_with_the_time_they_were_sent(hook, tmp_path: Path,  # noqa: F811
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    now = clock_now()       # live traffic ending now (budgets never count demo data)
    seeded = seed_log(tmp_path / "live.duckdb", build_results(now=now, n=60, days=2, source="live"), now=now)
    monkeypatch.setenv("DATABASE_URL", str(seeded.path))
    monkeypatch.setenv("TAELIO_POLICY", str(_tiny_budget_policy(tmp_path)))
    monkeypatch.setenv(WEBHOOK_ENV, f"http://127.0.0.1:{hook.server_port}/{SECRET_PATH}")
    at = open_page(make_app(), "costs")
    table = _alerts_table(at)
    assert table.Sent.str.endswith(" UTC").all() and set(table.To) == {"127.0.0.1"}
    assert table.Alert.str.contains("is used up").any()
    assert len(hook.bodies) == len(table)
    assert not any(SECRET_PATH in c.value for c in at.caption)
    assert any(c.value.startswith("Sent to 127.0.0.1 (TAELIO_ALERT_WEBHOOK)") for c in at.caption)


def test_health_says_where_alerts_would_go_when_no_webhook_is_set(seeded_app, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    at = open_page(make_app(), "health")
    assert any(s.value == "Outage alerts" for s in at.subheader)
    assert any("No webhook set" in c.value for c in at.caption)
