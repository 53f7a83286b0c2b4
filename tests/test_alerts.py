"""Alerts reach people: budgets and outages posted to a local webhook as Slack JSON, each exactly once."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.config.policy_parser import parse_policy
from taelio_core.config.settings import Settings
from taelio_core.errors import ConfigError
from taelio_core.monitoring.alerts import WEBHOOK_ENV, check_alerts, recent_alerts, webhook_from
from taelio_core.redaction import redact
from tests.policies import policy_text

NOW = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)     # passed to the code under test: no dependence on today
SECRET_PATH = "services/T0001/B0002/s3cr3tTokenValue42"


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append((self.path, self.headers["Content-Type"], json.loads(body)))  # type: ignore[attr-defined]
        status = self.server.statuses.pop(0) if self.server.statuses else 200  # type: ignore[attr-defined]
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.bodies, server.statuses = [], []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def policy():  # noqa: ANN201
    return parse_policy(policy_text(providers={"sim": "simulated"}, routes={"pro": {"idea": ["sim:a"]}},
                                    budgets={"tier": {"pro": 1.0}}), source="alerts.toml")


@pytest.fixture
def log(tmp_path: Path) -> Iterator[DuckDBCallLog]:
    call_log = DuckDBCallLog(tmp_path / "alerts.duckdb")
    yield call_log
    call_log.close()


def _spend(log: DuckDBCallLog, usd: float, *, n: int) -> None:
    rows = [[f"r{n}", 1, NOW - timedelta(hours=2), "live", "pro", "idea", "sim", "a", "ok", usd]]
    log.write(lambda con: con.executemany(
        "INSERT INTO attempts (request_id, n, ts, source, tier, task, provider, model, status, cost_usd) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows))


def _settings(hook: ThreadingHTTPServer) -> Settings:
    return Settings(env={WEBHOOK_ENV: f"http://127.0.0.1:{hook.server_port}/{SECRET_PATH}"})


def test_budget_alerts_are_posted_as_slack_json_once_per_threshold_per_month(hook, policy, log) -> None:  # noqa: ANN001
    settings = _settings(hook)
    _spend(log, 0.85, n=1)                       # 85% of $1.00, halfway through the month: 80% and projected
    first = check_alerts(log, policy, settings, now=NOW)
    assert sorted(d.alert.kind for d in first if d.status == "sent") == ["budget_alert", "budget_projected"]
    assert len(hook.bodies) == 2
    path, content_type, body = hook.bodies[0]
    assert path == f"/{SECRET_PATH}" and content_type == "application/json"
    texts = sorted(b["text"] for _, _, b in hook.bodies)
    assert texts[0] == ":warning: Taelio: Budget tier 'pro' ($1.00 a month) is projected to run out this month, " \
                       "around 18 Dec: $0.85 spent so far, $1.82 at this rate (182%)."
    assert texts[1] == ":warning: Taelio: Budget tier 'pro' ($1.00 a month) passed its 80% alert: $0.85 spent (85%)."
    assert body["blocks"][0]["type"] == "section" and body["blocks"][1]["type"] == "context"
    # the same check again, a minute later: nothing is sent twice
    again = check_alerts(log, policy, settings, now=NOW + timedelta(minutes=1))
    assert {d.status for d in again} == {"already_sent"} and len(hook.bodies) == 2
    # crossing 100%: only the new threshold goes out
    _spend(log, 0.25, n=2)
    over = check_alerts(log, policy, settings, now=NOW + timedelta(minutes=2))
    assert [d.alert.kind for d in over if d.status == "sent"] == ["budget_over"] and len(hook.bodies) == 3
    assert "is used up: $1.10 spent (110%)" in hook.bodies[2][2]["text"]


def test_the_alerts_table_logs_each_send_with_its_time_and_only_the_webhooks_host(hook, policy, log) -> None:  # noqa: ANN001
    _spend(log, 0.9, n=1)
    check_alerts(log, policy, _settings(hook), now=NOW)
    table = log.query("SELECT * FROM alerts")
    assert set(table.status) == {"sent"} and table.sent_at.notna().all() and set(table.destination) == {"127.0.0.1"}
    assert "s3cr3tTokenValue42" not in table.to_csv()
    shown = recent_alerts(log)
    assert list(shown.columns)[:5] == ["kind", "subject", "period", "message", "status"] and len(shown) == 2


def test_a_failed_post_is_retried_at_the_next_check_and_then_sent_once(hook, policy, log) -> None:  # noqa: ANN001
    _spend(log, 0.81, n=1)
    hook.statuses.extend([500, 500])
    failed = check_alerts(log, policy, _settings(hook), now=NOW)
    assert {d.status for d in failed} == {"failed"} and all(d.http_status == 500 for d in failed)
    assert all("s3cr3t" not in (d.error or "") for d in failed)
    sent = check_alerts(log, policy, _settings(hook), now=NOW + timedelta(minutes=1))
    assert {d.status for d in sent} == {"sent"} and len(hook.bodies) == 4          # 2 failed + 2 delivered
    assert {d.status for d in check_alerts(log, policy, _settings(hook), now=NOW)} == {"already_sent"}


def test_alerts_logged_without_a_webhook_go_out_once_one_is_configured(hook, policy, log) -> None:  # noqa: ANN001
    _spend(log, 0.81, n=1)
    quiet = check_alerts(log, policy, Settings(env={}), now=NOW)
    assert {d.status for d in quiet} == {"no_webhook"} and not hook.bodies
    check_alerts(log, policy, _settings(hook), now=NOW)
    check_alerts(log, policy, _settings(hook), now=NOW)
    assert len(hook.bodies) == 2


def test_a_provider_outage_is_alerted_once_per_outage(hook, policy, log) -> None:  # noqa: ANN001
    def opened(at: datetime) -> None:
        log.write(lambda con: con.execute(
            "INSERT INTO breaker_events VALUES (?, 'sim', 'a', 'closed', 'open', '5 failures in a row', ?, 1)",
            [at, at + timedelta(hours=1)]))
    opened(NOW - timedelta(minutes=5))
    check_alerts(log, policy, _settings(hook), now=NOW)
    check_alerts(log, policy, _settings(hook), now=NOW + timedelta(minutes=1))
    outages = [b for _, _, b in hook.bodies if "Outage" in b["text"]]
    assert [b["text"] for b in outages] == [":rotating_light: Taelio: Outage: sim:a is skipped by its circuit "
                                            "breaker since 2026-12-15 11:55 UTC: 5 failures in a row."]
    opened(NOW + timedelta(hours=3))             # a later, second outage is a new alert
    check_alerts(log, policy, _settings(hook), now=NOW + timedelta(hours=3, minutes=1))
    assert len([b for _, _, b in hook.bodies if "Outage" in b["text"]]) == 2


def test_the_webhook_comes_from_the_environment_or_secrets_and_must_be_http() -> None:
    assert webhook_from(Settings(env={})) is None
    from_secrets = webhook_from(Settings(env={}, secrets={WEBHOOK_ENV: "https://hooks.slack.com/services/x/y/z"}))
    assert from_secrets is not None and from_secrets.host == "hooks.slack.com"
    with pytest.raises(ConfigError, match=WEBHOOK_ENV):
        webhook_from(Settings(env={WEBHOOK_ENV: "hooks.slack.com/services/x"}))


def _tiny_budget_policy(tmp_path: Path) -> Path:
    """The seed policy with a one-cent monthly budget on every tier: any spend this month crosses it."""
    from taelio_core.config.policy_parser import load_policy
    text = load_policy("seed").text.replace("free = 50.0", "free = 0.01").replace("pro = 500.0", "pro = 0.01") \
        .replace("admin = 200.0", "admin = 0.01")
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def test_taelio_alerts_check_sends_from_cron_and_list_shows_when(hook, tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    from taelio_core.cli import main
    from tests.seeded_log import build_results, clock_now, seed_log
    now = clock_now()
    # live traffic (budgets never count demo data)
    db = seed_log(tmp_path / "cli.duckdb", build_results(now=now, n=40, days=1, source="live"), now=now).path
    monkeypatch.setenv(WEBHOOK_ENV, f"http://127.0.0.1:{hook.server_port}/{SECRET_PATH}")
    args = ["--policy", str(_tiny_budget_policy(tmp_path)), "--db", str(db), "alerts"]
    assert main([*args, "check", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["webhook_host"] == "127.0.0.1" and {a["status"] for a in doc["alerts"]} == {"sent"}
    sent = len(hook.bodies)
    assert sent >= 3 and all(b["text"].startswith(":rotating_light: Taelio: Budget tier") for _, _, b in hook.bodies
                             if "used up" in b["text"])
    assert main([*args, "check"]) == 0 and len(hook.bodies) == sent           # cron again: nothing twice
    assert "already_sent" in capsys.readouterr().out
    assert main([*args, "list"]) == 0
    listed = capsys.readouterr().out
    assert " UTC " in listed and "is used up" in listed and SECRET_PATH not in listed


def test_a_webhook_url_is_redacted_by_its_tokens_never_by_its_scheme_host_or_plain_words() -> None:
    """Registering the whole URL made every 8-character run of it a secret: ``https://`` and ``//127.0.0.1``
    were then blanked in every later message (a database URL in an error, for one)."""
    url = "https://hooks.slack.com/services/T0REDACT9/B0REDACT8/wEbHoOkToKeN2026xyz"
    assert webhook_from(Settings(env={WEBHOOK_ENV: url})) is not None
    shown = redact(f"POST {url} failed")
    for token in ("wEbHoOkToKeN2026xyz", "T0REDACT9", "B0REDACT8"):
        assert token.lower() not in shown.lower(), shown
    other = "see https://example.org/services/status and postgresql://127.0.0.1:5432/taelio"
    assert redact(other) == other
