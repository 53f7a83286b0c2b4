"""Costs and Health show the alerts that went out, with when; drawing them also checks for new ones.

Checking writes (an alert is claimed, posted and logged in the ``alerts``
table), so it runs at most once a minute per process and log, whoever is
looking; ``taelio alerts check`` does the same from cron when nobody is.
"""
from __future__ import annotations

import threading
import time

import pandas as pd
import streamlit as st

from taelio_core.errors import TaelioError
from taelio_core.monitoring.alerts import WEBHOOK_ENV, check_alerts, recent_alerts, webhook_from
from taelio_core.wiring import Taelio
from ui.safe_text import safe_markdown

__all__ = ["alerts_panel"]

CHECK_EVERY_S = 60.0
_last_check: dict[str, float] = {}
_lock = threading.Lock()


def _check(engine: Taelio) -> None:
    assert engine.log is not None
    where = str(engine.log.location)
    with _lock:
        if time.monotonic() - _last_check.get(where, -CHECK_EVERY_S) < CHECK_EVERY_S:
            return
        _last_check[where] = time.monotonic()
    check_alerts(engine.log, engine.policy, engine.settings, now=engine.router.clock.now())


def alerts_panel(engine: Taelio, *, kinds: tuple[str, ...], title: str = "Alerts") -> None:
    """The latest alerts of ``kinds``: when each was sent, where to (host only), or why it was not."""
    if engine.log is None:
        return
    st.subheader(title)
    try:
        _check(engine)
        hook = webhook_from(engine.settings)
    except TaelioError as e:
        st.warning(f"Alerts could not be checked: {e}")
        hook = None
    st.caption(f"Sent to {hook.host} ({WEBHOOK_ENV}), once per threshold per period; checked when this page "
               "is drawn (at most once a minute) and by `taelio alerts check`." if hook else
               f"No webhook set: alerts are only listed here. Set {WEBHOOK_ENV} (environment or secrets) to a "
               "Slack-compatible incoming webhook URL to have them sent.")
    df = recent_alerts(engine.log, kinds=kinds)
    if df.empty:
        st.caption("No alerts so far.")
        return
    sent = [f"{t:%Y-%m-%d %H:%M} UTC" if not pd.isna(t) else {"no_webhook": "not sent: no webhook",
                                                               "sending": "sending…"}.get(s, f"not sent: {e or s}")
            for t, s, e in zip(df.sent_at, df.status, df.error, strict=True)]
    # A static table wraps long messages (a grid cut them off); its cells are Markdown, so escape them.
    text = [safe_markdown(m).replace("$", "\\$") for m in df.message]
    st.table(pd.DataFrame({"Sent": sent, "Alert": text, "To": df.destination.fillna("–")}), hide_index=True)
