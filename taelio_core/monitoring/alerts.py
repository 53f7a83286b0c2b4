"""Budget and outage alerts that reach people: a Slack-compatible webhook, each alert sent once.

Budgets crossing their alert share (80% by default), reaching 100%, or
projected to run out before the month ends, and providers whose breaker is
open, were only text on a page nobody may be looking at. Here they become
``Alert`` values, are delivered to a webhook that speaks Slack's incoming
webhook JSON (``{"text": ..., "blocks": [...]}``; Mattermost, Discord's
``/slack`` endpoint and most chat tools accept it), and are logged in the
``alerts`` table (migration 008) with the time they were sent.

**Once per threshold per period.** An alert's key is its kind, subject and
period (``budget_alert|tier:pro|2026-12``, or an outage's start time), the
table's primary key. A delivery first claims the key in one write
transaction; whoever claims it posts, nobody else does, so two dashboards
and a cron job never send the same alert twice. A post that failed (or had
no webhook configured yet) is tried again at the next check while the alert
still holds; a claim whose process died mid-post is not retried (at most
once, never twice).

**When alerts are checked:** whenever the dashboard draws Costs or Health
(any viewer, at most once a minute per process), and by ``taelio alerts
check``, which a cron job or systemd timer runs every minute so alerts go
out when nobody has the dashboard open.

**The URL** comes from ``TAELIO_ALERT_WEBHOOK`` in the environment or
``.streamlit/secrets.toml``, never from the policy file (policies get
shared and committed; a Slack webhook URL is a credential: its path is the
secret). Only its host is ever stored or shown.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from taelio_core.calllog.base import CallLog
from taelio_core.config.settings import Settings
from taelio_core.errors import ConfigError
from taelio_core.formatting import money
from taelio_core.redaction import redact, register_webhook_secrets

__all__ = ["WEBHOOK_ENV", "Alert", "AlertDelivery", "Webhook", "budget_alerts", "check_alerts",
           "current_alerts", "deliver", "outage_alerts", "recent_alerts", "slack_payload", "webhook_from"]

WEBHOOK_ENV = "TAELIO_ALERT_WEBHOOK"
KINDS = {"budget_alert": "budget alert share reached", "budget_over": "budget used up",
         "budget_projected": "budget projected to run out", "provider_outage": "provider outage"}


@dataclass(frozen=True, kw_only=True)
class Alert:
    kind: str          # budget_alert | budget_over | budget_projected | provider_outage
    subject: str       # tier:pro, provider:openai, openai:gpt-4.1
    period: str        # 2026-12 for a monthly budget; when the breaker opened for an outage
    text: str

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.subject}|{self.period}"


def budget_alerts(status: pd.DataFrame, *, now: datetime) -> list[Alert]:
    """From ``analytics.budget_status`` rows: one alert per threshold crossed this month."""
    period = f"{now:%Y-%m}"
    out = []
    for r in status.to_dict("records"):
        subject = f"{r['scope']}:{r['name']}"
        spent, limit = money(r["spent_usd"]), money(r["limit_usd"])
        head = f"Budget {r['scope']} '{r['name']}' ({limit} a month)"
        if r["spent_pct"] >= 100:
            out.append(Alert(kind="budget_over", subject=subject, period=period,
                             text=f"{head} is used up: {spent} spent ({r['spent_pct']:.0f}%)."))
        if r["alert_pct"] <= r["spent_pct"]:
            out.append(Alert(kind="budget_alert", subject=subject, period=period,
                             text=f"{head} passed its {r['alert_pct']:.0f}% alert: {spent} spent "
                                  f"({r['spent_pct']:.0f}%)."))
        if r["spent_pct"] < 100 and r["projected_pct"] > 100:
            when = r.get("runs_out_on")
            on = f", around {when:%d %b}" if when is not None and not pd.isna(when) else ""
            out.append(Alert(kind="budget_projected", subject=subject, period=period,
                             text=f"{head} is projected to run out this month{on}: {spent} spent so far, "
                                  f"{money(r['projected_usd'])} at this rate ({r['projected_pct']:.0f}%)."))
    return out


def outage_alerts(states: pd.DataFrame) -> list[Alert]:
    """From breaker states (``health.health_report``): one alert per outage, keyed by when it began."""
    out = []
    for r in states.to_dict("records"):
        if r["state"] != "open":
            continue
        subject = f"{r['provider']}:{r['model']}"
        began = pd.Timestamp(r["changed_at"]) if r["changed_at"] is not None and not pd.isna(r["changed_at"]) else None
        period = began.isoformat() if began is not None else "unknown"
        what = f"provider {r['provider']} (every model)" if r["model"] == "*" else subject
        since = f" since {began:%Y-%m-%d %H:%M} UTC" if began is not None else ""
        reason = f": {r['reason']}" if r.get("reason") else ""
        out.append(Alert(kind="provider_outage", subject=subject, period=period,
                         text=f"Outage: {what} is skipped by its circuit breaker{since}{reason}."))
    return out


def current_alerts(log: CallLog, policy: Any, *, now: datetime) -> list[Alert]:  # noqa: ANN401 - RoutingPolicy
    """Every alert that holds now, from the call log: budgets this month and open breakers."""
    from taelio_core.analytics.budget_burn import budget_status
    from taelio_core.analytics.filters import Filters
    from taelio_core.monitoring.health import health_report

    status = budget_status(log, policy.model.budgets, Filters(), now=now)
    states = health_report(policy=policy, now=now, call_log=log).states
    return budget_alerts(status, now=now) + outage_alerts(states)


def slack_payload(alert: Alert) -> dict[str, object]:
    """Slack's incoming-webhook JSON: ``text`` for notifications, blocks for the message."""
    icon = ":rotating_light:" if alert.kind in ("budget_over", "provider_outage") else ":warning:"
    return {"text": f"{icon} Taelio: {alert.text}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *Taelio* {alert.text}"}},
                       {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{KINDS[alert.kind]} · "
                                                         f"{alert.subject} · {alert.period}"}]}]}


@dataclass(frozen=True, kw_only=True)
class Webhook:
    """Where alerts go. ``host`` is all that is ever stored or shown."""

    url: str
    timeout_s: float = 5.0

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "?"

    def post(self, payload: dict[str, object]) -> int:
        """POST the JSON; returns the HTTP status. Raises ``OSError`` (``URLError``/``HTTPError``) on failure."""
        body = json.dumps(payload).encode()
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - https/http checked
            return int(resp.status)


def webhook_from(settings: Settings) -> Webhook | None:
    """The webhook named by ``TAELIO_ALERT_WEBHOOK`` (environment, then secrets), or None."""
    url = settings.lookup(WEBHOOK_ENV)
    if not url:
        return None
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("must be an http(s) URL, e.g. https://hooks.slack.com/services/...", source=WEBHOOK_ENV)
    register_webhook_secrets(url)     # Slack's path holds the secret: redacted wherever it appears
    return Webhook(url=url)


@dataclass(frozen=True, kw_only=True)
class AlertDelivery:
    alert: Alert
    status: str              # sent | failed | no_webhook | already_sent
    http_status: int | None = None
    error: str | None = None


def _claim(log: CallLog, alert: Alert, now: datetime, destination: str | None) -> bool:
    """Take the right to deliver ``alert``: True for exactly one caller while it is unsent."""
    def txn(con: Any) -> bool:  # noqa: ANN401 - a DuckDB connection
        row = con.execute("SELECT status FROM alerts WHERE alert_key = ?", [alert.key]).fetchone()
        if row is None:
            con.execute("INSERT INTO alerts (alert_key, kind, subject, period, message, first_seen, status, "
                        "destination, attempts) VALUES (?, ?, ?, ?, ?, ?, 'sending', ?, 1)",
                        [alert.key, alert.kind, alert.subject, alert.period, alert.text, now, destination])
            return True
        if row[0] in ("failed", "no_webhook") and destination is not None:
            con.execute("UPDATE alerts SET status = 'sending', destination = ?, attempts = attempts + 1 "
                        "WHERE alert_key = ?", [destination, alert.key])
            return True
        return False
    return log.write(txn)


def deliver(log: CallLog, alerts: list[Alert], webhook: Webhook | None, *,
            now: Callable[[], datetime]) -> list[AlertDelivery]:
    """Log each alert once and post it once; what happened to each."""
    out = []
    for alert in alerts:
        if not _claim(log, alert, now(), webhook.host if webhook else None):
            out.append(AlertDelivery(alert=alert, status="already_sent"))
            continue
        if webhook is None:
            status, code, error, sent = "no_webhook", None, f"{WEBHOOK_ENV} is not set", None
        else:
            try:
                code, status, error, sent = webhook.post(slack_payload(alert)), "sent", None, now()
            except urllib.error.HTTPError as e:
                status, code, error, sent = "failed", e.code, f"HTTP {e.code} from {webhook.host}", None
            except (OSError, ValueError) as e:
                reason = getattr(e, "reason", e)
                status, code, error, sent = "failed", None, redact(f"{webhook.host}: {reason}")[:300], None
        log.write(lambda con, s=status, c=code, e=error, t=sent, k=alert.key: con.execute(
            "UPDATE alerts SET status = ?, http_status = ?, error = ?, sent_at = ? WHERE alert_key = ?",
            [s, c, e, t, k]))
        out.append(AlertDelivery(alert=alert, status=status, http_status=code, error=error))
    return out


def check_alerts(log: CallLog, policy: Any, settings: Settings, *, now: datetime) -> list[AlertDelivery]:  # noqa: ANN401
    """Evaluate every alert that holds now and deliver the new ones (the dashboard and ``taelio alerts check``)."""
    return deliver(log, current_alerts(log, policy, now=now), webhook_from(settings), now=lambda: now)


def recent_alerts(log: CallLog, *, kinds: tuple[str, ...] = tuple(KINDS), limit: int = 20) -> pd.DataFrame:
    """The latest alerts of ``kinds``, newest first: what Costs and Health show."""
    if not kinds:
        kinds = ("",)             # matches nothing, and keeps the SQL valid
    return log.query("SELECT kind, subject, period, message, status, sent_at, first_seen, destination, error FROM "
                     f"alerts WHERE kind IN ({', '.join('?' for _ in kinds)}) ORDER BY first_seen DESC LIMIT ?",
                     [*kinds, limit])       # IN, not DuckDB's list_contains: PostgreSQL runs it too
