"""The Sandbox page's Streamlit side: editors for policy B, traffic and models, the run, the results.

Everything that is not about widgets lives in ``taelio_core.sandbox``; this
module turns its values into tables, forms and Plotly figures, and keeps
the page's state (policy B's TOML, the last report) in ``st.session_state``.

Policy A is the policy the dashboard runs (the engine's, by its real name),
or any built-in or file policy; policy B starts as a copy of A, a built-in
or a file, and carries its own name. Replay, fitting and saving use the
engine's own call log: the page never opens a second handle on the file.

A run happens in the script thread with a progress bar. Cancel is a real
button: pressing it makes Streamlit rerun the page, which stops the running
script at the next progress update; the engine cleans up its loop on the way
out and the rerun says the run was cancelled.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from taelio_core.calllog import CallLog
from taelio_core.config.policy import RoutingPolicy
from taelio_core.config.policy_parser import BUILTIN_POLICIES, load_policy
from taelio_core.errors import TaelioError
from taelio_core.sandbox.fitting import fit_models
from taelio_core.wiring import Taelio
from taelio_core.sandbox.models import (
    ERROR_CLASSES,
    SCENARIOS,
    Z95,
    ModelSet,
    RateLimit,
    models_from_policy,
    parse_scenario,
)
from taelio_core.sandbox.policy_edit import (
    apply_chain_table,
    apply_settings_table,
    chain_table,
    policy_from_toml,
    renamed,
    settings_table,
)
from taelio_core.calllog.sources import REPLAY_SOURCES, SOURCES
from taelio_core.sandbox.simulation import simulate
from taelio_core.sandbox.store import save_report
from taelio_core.sandbox.traffic import Traffic, replay_traffic, synthetic_traffic

__all__ = ["REPORT", "REPORT_CONFIG", "choose_models", "choose_traffic", "edit_policy_b", "pick_policy_a",
           "run_panel"]

B_TEXT = "sandbox_b_text"
REPORT = "sandbox_report"
REPORT_CONFIG = "sandbox_report_config"   # the configuration the shown report was run with
EDITOR_VERSION = "sandbox_editor_version"
RUNNING = "sandbox_running"
RUNNING_POLICY = "running"                # Policy A's choice: the policy the dashboard runs
POLICY_FILE = "file"                      # Policy A's choice: a TOML file


@st.cache_data(ttl=120, show_spinner="Reading the log…", max_entries=8)
def _replay(_log: CallLog, location: str, days: int, sources: tuple[str, ...], hour: str) -> Traffic:
    del location, hour  # cache keys: the log, and the hour (the window ends now)
    end = datetime.now(timezone.utc)
    return replay_traffic(_log, end - timedelta(days=days), end, sources=sources)


@st.cache_data(ttl=600, show_spinner="Fitting provider models…", max_entries=8)
def _fit(_log: CallLog, location: str, _prior: ModelSet, prior_key: str, hour: str) -> ModelSet:
    del location, prior_key, hour
    end = datetime.now(timezone.utc)
    return fit_models(_log, _prior, end - timedelta(days=7), end)


def _hour() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H")


def pick_policy_a(engine: Taelio) -> RoutingPolicy | None:
    """The running policy (by its real name), a built-in one, or a TOML file; None until a file is given."""
    running = engine.policy
    options = [RUNNING_POLICY, *(name for name in BUILTIN_POLICIES if name != running.name), POLICY_FILE]
    labels = {RUNNING_POLICY: f"{running.name} (the running policy)", POLICY_FILE: "A policy file (TOML)…"}
    choice = st.selectbox("Policy A", options, key="sandbox_a",
                          format_func=lambda o: labels.get(o, f"{o} (built in)"),
                          help="What runs now, to compare a candidate against; or any other policy.")
    if choice == RUNNING_POLICY:
        return running
    if choice != POLICY_FILE:
        return load_policy(choice)
    upload = st.file_uploader("Policy A's TOML file", type=["toml"], key="sandbox_a_file")
    if upload is None:
        st.info("Choose a policy TOML file for A.")
        return None
    try:
        return policy_from_toml(upload.getvalue().decode("utf-8"), source=upload.name)
    except (TaelioError, UnicodeDecodeError) as e:
        st.error(f"Policy A is not valid: {e}")
        return None


def _reset_b(text: str) -> None:
    st.session_state[B_TEXT] = text
    st.session_state[EDITOR_VERSION] = st.session_state.get(EDITOR_VERSION, 0) + 1


def edit_policy_b(policy_a: RoutingPolicy) -> RoutingPolicy | None:
    """Policy B: starts as a copy of A; import a TOML file; edit its chains and settings as tables."""
    if B_TEXT not in st.session_state:
        _reset_b(policy_a.text)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    start = c1.selectbox("Start B from", ["copy of A", *BUILTIN_POLICIES], key="sandbox_b_from",
                         format_func=lambda o: o if o == "copy of A" else f"{o} (built in)")
    if c2.button("Reset B", key="sandbox_reset", help="Replace B's edits with the chosen start"):
        _reset_b(policy_a.text if start == "copy of A" else load_policy(start).text)
    upload = st.file_uploader("Or import a policy TOML as B", type=["toml"], key="sandbox_import")
    if upload is not None and st.session_state.get("sandbox_imported") != upload.file_id:
        try:
            imported = policy_from_toml(upload.getvalue().decode("utf-8"), source=upload.name)
        except (TaelioError, UnicodeDecodeError) as e:
            st.error(f"Not imported: {e}")
        else:
            st.session_state["sandbox_imported"] = upload.file_id
            _reset_b(imported.text)
            st.success(f"Imported {upload.name} as policy B.")
    base = policy_from_toml(st.session_state[B_TEXT], source="policy B")
    version = st.session_state.get(EDITOR_VERSION, 0)
    st.markdown("**Chains** (one row per tier × task, in order; blank cells are skipped)")
    chains = st.data_editor(chain_table(base), key=f"sandbox_chains_{version}", hide_index=True,
                            disabled=["tier", "task"], width="stretch")
    st.markdown("**Settings** (TOML values; blank = not set)")
    settings = st.data_editor(settings_table(base), key=f"sandbox_settings_{version}", hide_index=True,
                              num_rows="dynamic", width="stretch")
    # B carries a name of its own (what an export is saved as), not A's.
    own = base.name if base.name != policy_a.name else f"{policy_a.name}-b"
    name = st.text_input("Policy B's name", own, key=f"sandbox_b_name_{version}",
                         help="Lowercase letters, digits, - and _; saved in the exported TOML")
    try:
        edited = apply_settings_table(apply_chain_table(base, chains), settings)
        return renamed(edited, name.strip())
    except TaelioError as e:
        st.error(f"Policy B is not valid: {e}")
        return None


def choose_traffic(policy: RoutingPolicy, log: CallLog | None) -> Traffic | None:
    kind = st.radio("Traffic", ["Synthetic", "Replay the log"], horizontal=True, key="sandbox_traffic")
    try:
        if kind == "Synthetic":
            c1, c2, c3 = st.columns(3)
            n = c1.number_input("Requests", 100, 1_000_000, 20_000, step=1000, key="sandbox_n")
            hours = c2.number_input("Over (hours)", 1, 24 * 14, 24, key="sandbox_hours")
            curve = c3.selectbox("Arrival rate", ["flat", "daily"], key="sandbox_curve")
            return synthetic_traffic(requests=int(n), tiers=policy.tiers, tasks=policy.tasks,
                                     duration_s=float(hours) * 3600, curve=curve, seed=0)
        if log is None:
            st.info("Replay needs the call log.")
            return None
        c1, c2 = st.columns(2)
        days = c1.number_input("Last days", 1, 90, 7, key="sandbox_days")
        sources = c2.multiselect("Sources", [s for s in SOURCES if s != "sandbox"], list(REPLAY_SOURCES),
                                 key="sandbox_sources")
        return _replay(log, log.location, int(days), tuple(sources), _hour())
    except TaelioError as e:
        st.info(str(e))
        return None


def choose_models(policies: list[RoutingPolicy], log: CallLog | None) -> ModelSet:
    source = st.radio("Provider models", ["From the policy", "Fitted from the log (last 7 days)", "By hand"],
                      horizontal=True, key="sandbox_models")
    models = models_from_policy(*policies)
    if source.startswith("Fitted") and log is not None:
        models = _fit(log, log.location, models, ",".join(sorted(models.models)), _hour())
        st.caption("Fitted per provider:model from logged attempts (fitted_rows = attempts behind each fit; "
                   "0 = too few, policy values kept).")
    table = pd.DataFrame(models.rows())
    if source == "By hand":
        edited = st.data_editor(table, key="sandbox_models_edit", hide_index=True, width="stretch",
                                disabled=["provider", "model", "outages", "tokens_per_task", "fitted_rows"])
        return _models_from_rows(models, edited)
    st.dataframe(table, hide_index=True, width="stretch")
    return models


def _models_from_rows(models: ModelSet, table: pd.DataFrame) -> ModelSet:
    updated, limits = dict(models.models), dict(models.limits)
    for row in table.to_dict(orient="records"):
        ref = f"{row['provider']}:{row['model']}"
        p50, p95 = float(row["latency_p50_ms"]), float(row["latency_p95_ms"])
        sigma = math.log(max(p95, p50 * 1.0001) / max(p50, 1e-6)) / Z95
        rates = {e: float(row.get(f"p_{e}") or 0.0) for e in ERROR_CLASSES if float(row.get(f"p_{e}") or 0.0) > 0}
        updated[ref] = replace(updated[ref], latency_ms=p50, latency_sigma=sigma, ttft_ms=float(row["ttft_ms"]),
                               error_rates=rates, retry_after_s=float(row["retry_after_s"]))
        rpm, tpm = row.get("rpm_limit"), row.get("tpm_limit")
        if _number(rpm) or _number(tpm):
            limits[str(row["provider"])] = RateLimit(rpm=_number(rpm), tpm=_number(tpm))
    return replace(models, models=updated, limits=limits, source="hand")


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or number <= 0 else number


def config_key(*parts: object) -> str:
    """A digest of what a run depends on: results shown under another digest are stale."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def run_panel(policy_a: RoutingPolicy, policy_b: RoutingPolicy | None, traffic: Traffic | None,
              models: ModelSet, log: CallLog | None) -> str:
    """Scenario, seeds, Run and Cancel; returns the digest of the configuration now on screen."""
    labels = {"none": "No scenario"} | {k: v.label for k, v in SCENARIOS.items()}
    c1, c2 = st.columns([3, 1])
    scenario = c1.selectbox("Scenario", list(labels), format_func=labels.get, key="sandbox_scenario")
    seeds = c2.number_input("Seeds", 1, 10, 2, key="sandbox_seeds", help="Several seeds give a band around each delta")
    run_col, cancel_col = st.columns([1, 1])
    run = run_col.button("Run A vs B", type="primary", key="sandbox_run",
                         disabled=policy_b is None or traffic is None)
    was_running = bool(st.session_state.get(RUNNING))
    cancelled = cancel_col.button("Cancel", key="sandbox_cancel", disabled=not (run or was_running),
                                  help="Stops a run in progress")
    if was_running and not run:
        # A click during a run makes Streamlit stop the running script at its next progress update.
        st.session_state[RUNNING] = False
        if cancelled:
            st.info("Cancelled: the run was stopped before it finished; nothing was saved.")
    config = config_key(policy_a.text, policy_b.text if policy_b else None,
                        traffic.description if traffic else None, traffic.tier_counts() if traffic else None,
                        repr(models), scenario, int(seeds))
    if not run or policy_b is None or traffic is None:
        return config
    st.session_state[RUNNING] = True
    bar = st.progress(0.0, text="Simulating…")
    try:
        report = simulate(policy_a, traffic, models, policy_b=policy_b, scenario=parse_scenario(scenario),
                          seeds=int(seeds),
                          progress=lambda share: bar.progress(min(share, 1.0), text=f"Simulating… {share:.0%}"))
    except TaelioError as e:
        st.session_state[RUNNING] = False
        st.error(str(e))
        return config
    st.session_state[RUNNING] = False
    bar.empty()
    if log is not None:
        try:
            save_report(log, report)
        except TaelioError as e:
            st.warning(f"The run was not saved: {e}")
    st.session_state[REPORT] = report
    st.session_state[REPORT_CONFIG] = config
    return config
