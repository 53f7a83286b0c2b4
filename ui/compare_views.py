"""The Compare page's views: side by side, the matrix, blind votes, the leaderboard, live splits.

All numbers come from ``taelio_core.experiments.results`` and
``live_splits``; model output is shown only through ``safe_markdown``.
"""
from __future__ import annotations

import random

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from taelio_core.experiments import Experiments, ExperimentResults, next_matchup
from taelio_core.experiments.display import summary_table, variant_order
from taelio_core.experiments.live_splits import analyse_splits
from taelio_core.formatting import milliseconds as ms
from taelio_core.formatting import money, percent
from ui.safe_text import safe_markdown

__all__ = ["live_splits", "matrix_view", "results_view", "side_by_side", "vote_view"]


TABLE_PX = 860          # what a table shows without scrolling sideways beside the sidebar (1400 px window)


def side_by_side(res: ExperimentResults) -> None:
    m = res.matrix
    if m.empty:
        return
    prompts = m.drop_duplicates("input_id").set_index("input_id").prompt
    input_id = st.selectbox("Input", prompts.index.tolist(), key="sbs_input",
                            format_func=lambda i: f"#{i}: {prompts[i][:80]}")
    order = {v: i for i, v in enumerate(variant_order(res))}
    row = m[m.input_id == input_id].sort_values("variant", key=lambda c: c.map(order))
    for col, cell in zip(st.columns(len(row)), row.itertuples(), strict=True):
        with col:
            st.markdown(f"**{safe_markdown(cell.label)}**")
            if cell.status == "pending":
                st.caption("not run yet")
                continue
            st.caption(f"{ms(cell.latency_ms)} · {cell.input_tokens or 0:,}→{cell.output_tokens or 0:,} tokens · "
                       f"{money(cell.cost_usd)}")
            if cell.status != "ok":
                st.error(cell.error or cell.status)
            st.markdown(safe_markdown(cell.output))


def matrix_view(res: ExperimentResults) -> None:
    c1, c2, c3 = st.columns(3)
    errors = c1.checkbox("Only inputs with errors", key="mx_errors")
    disagree = c2.checkbox("Only disagreements", key="mx_disagree")
    unvoted = c3.checkbox("Only unvoted", key="mx_unvoted")
    flags = res.flags
    keep = pd.Series(True, index=flags.index)
    for on, column in ((errors, "has_error"), (disagree, "disagreement"), (unvoted, "unvoted")):
        if on:
            keep &= flags[column]
    ids = set(flags[keep].input_id)
    m = res.matrix[res.matrix.input_id.isin(ids)].copy()
    icon = {"ok": "✅", "failed": "❌", "truncated": "✂️", "pending": "…"}
    checked = bool(res.experiment.assertions)
    m["cell"] = [(f"[{p}/{t} checks] " if checked and t else "")
                 + (f"{icon.get(s, s)} {o[:60]}" if s == "ok" else f"{icon.get(s, s)} {e or ''}"[:70])
                 for s, o, e, p, t in zip(m.status, m.output, m.error, m.checks_passed, m.checks_total, strict=True)]
    order = variant_order(res)              # best rated first, else as the experiment lists them
    labels = [res.label(v) for v in order]
    table = m.pivot(index="input_id", columns="variant", values="cell").reindex(columns=order)
    table.columns = labels
    verdicts = m.assign(ok=m.checks_passed == m.checks_total).pivot(index="input_id", columns="variant",
                                                                     values="ok").reindex(columns=order)
    counted = m.pivot(index="input_id", columns="variant", values="checks_total").reindex(columns=order)
    verdicts.columns = counted.columns = labels
    table = flags.set_index("input_id").loc[table.index, ["prompt", "votes"]].join(table)
    table.index.name = "#"
    table = table.rename(columns={"prompt": "Prompt", "votes": "Votes"})
    st.caption(f"{len(table)} of {len(flags)} inputs; variants best rated first" if res.leaderboard is not None
               else f"{len(table)} of {len(flags)} inputs")
    # Every variant on screen at once: the answer columns share the page's width.
    each = max(120, min(360, (TABLE_PX - 300) // max(1, len(labels))))
    config = {"Prompt": st.column_config.TextColumn(width=180), "Votes": st.column_config.NumberColumn(width=60),
              **{label: st.column_config.TextColumn(width=each) for label in labels}}
    shown = table.style.apply(lambda col: [_check_colour(verdicts.at[i, col.name], counted.at[i, col.name])
                                            if col.name in labels else "" for i in col.index], axis=0) \
        if checked else table
    st.dataframe(shown, width="stretch", column_config=config)
    if checked:
        failures = m[m.checks_failed != ""]
        st.caption(f"Checks: {', '.join(a.label for a in res.experiment.assertions)}. Green: every check passed; "
                   "red: one or more failed.")
        if len(failures):
            with st.expander(f"Failed checks ({len(failures)} answers)"):
                st.dataframe(pd.DataFrame({"#": failures.input_id, "Variant": failures.label,
                                           "Failed": failures.checks_failed}), hide_index=True, width="stretch")
    st.markdown("**Per variant**")
    cols = ["Variant", "Model", "Calls", "Errors", "Mean latency", "p95 latency", "Tokens in", "Tokens out",
            "Cost per call", "Total cost"]
    st.dataframe(summary_table(res)[cols], hide_index=True, width="stretch")


def _check_colour(passed: bool, total: int) -> str:
    if not total:
        return ""
    return "background-color: #d9f2e3" if passed else "background-color: #fbdada"


@st.fragment
def vote_view(ex: Experiments, experiment_id: str) -> None:
    """Blind A/B: names hidden, sides random; keys A, B, T (tie), X (both bad), S (skip).

    A fragment: a vote reruns only this view (store the vote, draw the next
    pair), not the page with its estimate, tables and statistics.
    """
    experiment = ex.store.load(experiment_id)
    voter = st.text_input("Your name (optional, stored with each vote)", key="vote_voter")
    state = st.session_state
    if state.get("vs_for") != experiment_id:
        state.update(vs_for=experiment_id, vs_match=None, vs_skip=set(), vs_last=None, vs_count=0)
    if state.vs_match is None:
        state.vs_match = next_matchup(ex.store, experiment, rng=random.Random(), voter=voter or None,
                                        skip=state.vs_skip)
    m = state.vs_match
    if state.vs_last:
        st.caption(state.vs_last)
    if m is None:
        st.info("Nothing to vote on: run the experiment first (a pair needs two answers to the same input).")
        return
    st.markdown(f"**Input #{m.input_id}** ({state.vs_count} votes this session)")
    st.markdown(safe_markdown(m.prompt))
    left, right = st.columns(2)
    with left.container(border=True):
        st.markdown("**A**")
        st.markdown(safe_markdown(m.left_text))
    with right.container(border=True):
        st.markdown("**B**")
        st.markdown(safe_markdown(m.right_text))
    for col, (label, value, key) in zip(st.columns(5), [("A is better", "left", "A"), ("B is better", "right", "B"),
                                                       ("Tie", "tie", "T"), ("Both bad", "both_bad", "X"),
                                                       ("Skip", "skip", "S")], strict=True):
        col.button(f"{label} ({key})", key=f"vote_{value}", shortcut=key, width="stretch", on_click=_vote,
                   args=(ex, experiment.experiment_id, experiment.labels, m, value, voter))


def _vote(ex: Experiments, experiment_id: str, names: dict[str, str], m, choice: str, voter: str) -> None:  # noqa: ANN001
    """A vote button's callback: runs before the fragment redraws, so the next pair shows at once."""
    state = st.session_state
    if choice == "skip":
        state.vs_skip.add((m.input_id, *sorted((m.left, m.right))))
    else:
        ex.store.add_vote(experiment_id, m.input_id, m.left, m.right, choice, voter=voter)
        state.vs_count += 1
        said = {"left": "A", "right": "B", "tie": "a tie", "both_bad": "both bad"}[choice]
        state.vs_last = (f"Recorded: {said}. A was {names[m.left]}, B was {names[m.right]} "
                         f"(input #{m.input_id}).")
    state.vs_match = None


def results_view(ex: Experiments, experiment_id: str) -> None:
    """Verdicts for a chosen pair (default: the leader and its most-voted rival), then the leaderboard."""
    res = ex.results(experiment_id, n_boot=200)
    ids = list(res.experiment.labels)
    if res.pair is not None and len(ids) > 2:
        c1, c2 = st.columns(2)
        a = c1.selectbox("Compare", ids, index=ids.index(res.pair[0]), format_func=res.label, key="res_a")
        others = [i for i in ids if i != a]
        b = c2.selectbox("with", others, format_func=res.label, key="res_b",
                         index=others.index(res.pair[1]) if res.pair[1] in others else 0)
        if (a, b) != res.pair:
            res = ex.results(experiment_id, pair=(a, b), n_boot=200)
    if res.verdict is not None:
        (st.success if res.verdict.decided else st.info)(f"Votes: {res.verdict.text}")
    if res.judge_verdict is not None:
        (st.success if res.judge_verdict.decided else st.info)(f"LLM judge (consistent verdicts only): "
                                                               f"{res.judge_verdict.text}")
    if res.judge_scores is not None and res.judge_scores.n:
        d = res.judge_scores
        a, b = (res.label(x) for x in res.pair)  # type: ignore[union-attr]
        st.caption(f"Judge scores: {b} − {a} = {d.diff:+.2f} points (95% CI {d.low:+.2f} to {d.high:+.2f}, "
                   f"paired bootstrap over {d.n} inputs).")
    s = res.summary
    if res.leaderboard is None:
        st.info("No leaderboard yet: cast some votes or run the LLM judge.")
        return
    cols = ["Variant", "Rating", "Rating 95% CI", "Wins", "Losses", "Ties", "Cost per win", "Cost per call"]
    table = summary_table(res)
    if "Checks passed" in table:
        cols.append("Checks passed")
    table = table[cols]
    st.markdown(f"**Leaderboard** (Bradley–Terry from {res.leaderboard_source}; ratings on the Elo scale)")
    st.dataframe(table, hide_index=True, width="stretch")
    order = variant_order(res)
    prob = pd.DataFrame(res.leaderboard.win_prob, index=res.leaderboard.names,
                        columns=res.leaderboard.names).loc[order, order]
    prob.index = prob.columns = [res.label(n) for n in order]
    for i in range(len(order)):
        prob.iloc[i, i] = float("nan")
    st.markdown("**Win probability** (row beats column)")
    st.dataframe(prob.map(lambda v: "–" if pd.isna(v) else f"{v:.0%}"), width="stretch")
    _quality_cost_chart(s)


def _quality_cost_chart(s: pd.DataFrame) -> None:
    """Rating against cost per call, one coloured marker per variant named in the legend.

    Names sit in the legend, not beside the points: cheap variants crowd
    near zero and their labels overlapped. Costs that span more than 20x
    go on a log axis so the cheap ones spread out.
    """
    d = s.dropna(subset=["cost_per_call_usd", "rating"]).sort_values("rating", ascending=False)
    if d.empty:
        st.caption("The quality-against-cost chart needs priced calls; these models have no price.")
        return
    fig = go.Figure()
    for r in d.itertuples():
        fig.add_trace(go.Scatter(
            x=[r.cost_per_call_usd], y=[r.rating], mode="markers", name=r.label, marker={"size": 12},
            error_y={"type": "data", "symmetric": False, "array": [r.rating_high - r.rating],
                     "arrayminus": [r.rating - r.rating_low]},
            customdata=[[money(r.cost_per_call_usd), f"{r.rating:,.0f}"]],
            hovertemplate=f"{r.label}<br>%{{customdata[0]}} per call<br>rating %{{customdata[1]}}<extra></extra>"))
    low, high = float(d.cost_per_call_usd.min()), float(d.cost_per_call_usd.max())
    log = low > 0 and high / low > 20
    xaxis: dict[str, object] = {"type": "log", "tickprefix": "$"} if log else {
        "range": [0, high * 1.15], "tickprefix": "$", "tickformat": ".2~r"}
    fig.update_layout(title="Quality against cost", xaxis_title="Cost per call (USD" + (", log scale)" if log else ")"),
                      yaxis_title="Rating (95% CI)", height=400, margin={"t": 50, "b": 40}, xaxis=xaxis,
                      legend={"title": {"text": "Variant (best first)"}})
    st.plotly_chart(fig, width="stretch")


def live_splits(ex: Experiments) -> None:
    analyses = analyse_splits(ex.store.log)
    if not analyses:
        st.info("No live traffic split in the log. Add a [splits.TIER.TASK.ARM] table to the routing policy "
                "(see the README's Compare section); its requests will show here.")
        return
    for a in analyses:
        st.markdown(f"**{a.tier} × {a.task}**")
        for sentence in a.sentences:
            st.write(sentence)
        arms = a.arms
        st.dataframe(pd.DataFrame({
            "Arm": arms.arm, "Requests": arms.requests.map(lambda n: f"{n:,}"),
            "Success": arms.success_rate.map(percent),
            "Success 95% CI": [f"{percent(lo)}–{percent(hi)}" for lo, hi in zip(arms.success_low, arms.success_high,
                                                                                 strict=True)],
            "Mean latency": arms.mean_latency_ms.map(ms), "p95 latency": arms.p95_latency_ms.map(ms),
            "Cost per call": arms.cost_per_call_usd.map(money), "Mostly served by": arms.served_by}),
            hide_index=True, width="stretch")
