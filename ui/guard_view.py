"""The Health page's budget and call-log panel: what the guards enforce, by which rule, and the writer's counters.

Why here: the budgets the router enforces (``taelio health``) and the Costs
page's cards read one spend query with one rule; this panel shows the same
figures, the rule, whether budgets are shared across processes, and the log
writer's counters (``last_error``, ``rejected``, ``replayed``), which no page
showed before.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from taelio_core.analytics.budget_burn import budget_rule
from taelio_core.formatting import money
from taelio_core.wiring import Taelio

__all__ = ["render_budget_rule", "render_guards"]


def render_guards(engine: Taelio) -> None:
    report = engine.health(history_limit=0)
    if report.shared_state is not None:
        if engine.shared is not None and not engine.shared.up:
            budgets = engine.policy.model.budgets
            hard = any(limit.hard for limit in (*budgets.tier.values(), *budgets.provider.values()))
            closed = (" Calls a hard budget covers are refused until it is back ([budgets] when_redis_down = "
                      "\"closed\")." if hard and budgets.when_redis_down == "closed" else "")
            st.warning(report.shared_state[:1].upper() + report.shared_state[1:] + "." + closed,
                       icon=":material/cloud_off:")
        else:
            st.caption(report.shared_state[:1].upper() + report.shared_state[1:] + ": breakers, budgets and rate limits are shared by "
                       "every process with this REDIS_URL.")
    st.subheader("Budgets the router enforces")
    if report.budgets.empty:
        st.caption("No budgets are set in the policy.")
    else:
        table = pd.DataFrame({
            "budget": [f"{r.scope} {r.name} ({r.period})" for r in report.budgets.itertuples(index=False)],
            "spent": [money(v) for v in report.budgets["spent_usd"]],
            "limit": [money(v) for v in report.budgets["limit_usd"]],
            "used": [f"{v:.1f} %" for v in report.budgets["used_pct"]],
            "reserved now": [money(v) for v in report.budgets["reserved_usd"]],
            "kind": ["hard" if h else "soft" for h in report.budgets["hard"]],
            "state": list(report.budgets["state"]),
        })
        st.dataframe(table, hide_index=True, width="stretch")
        shared = getattr(engine.router.budgets.store, "shared", False)
        st.caption(budget_rule(engine.policy.model.budgets.count_simulated) + " "
                   + ("Shared through Redis (REDIS_URL)." if engine.shared is not None else
                      "Shared by every Taelio process on this machine (a ledger beside the log); circuit breakers "
                      "are kept per process." if shared else "Kept by this dashboard's process only."))
    status = engine.log.writer_status() if engine.log is not None else None
    if status is None:
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Waiting to be written", f"{status.pending:,}", help="Recorded by this dashboard, not yet committed.")
    c2.metric("Replayed at open", f"{status.replayed:,}",
              help="Requests recovered from the journals of processes that died before writing them.")
    c3.metric("Set aside (malformed)", f"{status.set_aside:,}",
              help=f"Requests the log could not store, kept in {status.set_aside_dir} (any process).")
    if status.last_error:
        st.warning(f"The log writer's last error: {status.last_error}", icon=":material/warning:")
    else:
        st.caption(f"Call log {status.location}: the writer's last batch committed without error.")


def render_budget_rule(engine: Taelio) -> None:
    """The Costs page's line above its budget cards: which spend counts, and that the filters do not apply."""
    if engine.policy.model.budgets.tier or engine.policy.model.budgets.provider:
        st.caption(budget_rule(engine.policy.model.budgets.count_simulated) + " The sidebar's filters (dates, "
                   "sources, tiers, providers) do not apply to budgets: the cards show what the router enforces, "
                   "as on the Health page and in `taelio health`.")
