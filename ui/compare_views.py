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
from taelio_core.experiments.live_splits import analyse_splits
from ui.safe_text import safe_markdown

__all__ = ["live_splits", "matrix_view", "results_view", "side_by_side", "vote_view"]


def _cost(value: float | None) -> str:
    return "unpriced" if value is None or pd.isna(value) else f"${value:.5f}"


def side_by_side(res: ExperimentResults) -> None:
    m = res.matrix
    if m.empty:
        return
    prompts = m.drop_duplicates("input_id").set_index("input_id").prompt
    input_id = st.selectbox("Input", prompts.index.tolist(), key="sbs_input",
                            format_func=lambda i: f"#{i}: {prompts[i][:80]}")
    row = m[m.input_id == input_id]
    for col, cell in zip(st.columns(len(row)), row.itertuples(), strict=True):
        with col:
            st.markdown(f"**{safe_markdown(cell.label)}**")
            if cell.status == "pending":
                st.caption("not run yet")
                continue
            st.caption(f"{cell.latency_ms or 0:.0f} ms · {cell.input_tokens or 0}→{cell.output_tokens or 0} tokens · "
                       f"{_cost(cell.cost_usd)}")
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
    m["cell"] = [f"{icon.get(s, s)} {o[:70]}" if s == "ok" else f"{icon.get(s, s)} {e or ''}"[:80]
                 for s, o, e in zip(m.status, m.output, m.error, strict=True)]
    table = m.pivot(index="input_id", columns="label", values="cell")
    table = flags.set_index("input_id").loc[table.index, ["prompt", "votes"]].join(table)
    st.caption(f"{len(table)} of {len(flags)} inputs")
    st.dataframe(table, width="stretch")
    st.markdown("**Per variant**")
    cols = {"label": "Variant", "model": "Model", "calls": "Calls", "error_rate": "Error rate",
            "mean_latency_ms": "Mean ms", "p95_latency_ms": "p95 ms", "cost_per_call_usd": "Cost/call $",
            "mean_input_tokens": "Tokens in", "mean_output_tokens": "Tokens out"}
    st.dataframe(res.summary[list(cols)].rename(columns=cols), hide_index=True, width="stretch")


def vote_view(ex: Experiments, experiment_id: str) -> None:
    """Blind A/B: names hidden, sides random; keys A, B, T (tie), X (both bad), S (skip)."""
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
    buttons = st.columns(5)
    choice = None
    for col, (label, value, key) in zip(buttons, [("A is better", "left", "A"), ("B is better", "right", "B"),
                                                 ("Tie", "tie", "T"), ("Both bad", "both_bad", "X"),
                                                 ("Skip", "skip", "S")], strict=True):
        if col.button(f"{label} ({key})", key=f"vote_{value}", shortcut=key, width="stretch"):
            choice = value
    if choice is None:
        return
    if choice == "skip":
        state.vs_skip.add((m.input_id, *sorted((m.left, m.right))))
    else:
        ex.store.add_vote(experiment_id, m.input_id, m.left, m.right, choice, voter=voter)
        state.vs_count += 1
        names = experiment.labels
        said = {"left": "A", "right": "B", "tie": "a tie", "both_bad": "both bad"}[choice]
        state.vs_last = (f"Recorded: {said}. A was {names[m.left]}, B was {names[m.right]} "
                           f"(input #{m.input_id}).")
    state.vs_match = None
    st.rerun()


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
    board = s.sort_values("rating", ascending=False)
    table = pd.DataFrame({"Variant": board.label, "Rating": board.rating.round(0),
                          "95% CI": [f"{lo:.0f}–{hi:.0f}" for lo, hi in zip(board.rating_low, board.rating_high,
                                                                             strict=True)],
                          "Wins": board.wins, "Losses": board.losses, "Ties": board.ties,
                          "Cost per win": [_cost(v) for v in board.cost_per_win_usd],
                          "Cost per call": [_cost(v) for v in board.cost_per_call_usd]})
    st.markdown(f"**Leaderboard** (Bradley–Terry from {res.leaderboard_source}; ratings on the Elo scale)")
    st.dataframe(table, hide_index=True, width="stretch")
    names = [res.label(n) for n in res.leaderboard.names]
    prob = pd.DataFrame(res.leaderboard.win_prob, index=names, columns=names)
    for i in range(len(names)):
        prob.iloc[i, i] = float("nan")
    st.markdown("**Win probability** (row beats column)")
    st.dataframe(prob.map(lambda v: "–" if pd.isna(v) else f"{v:.0%}"), width="stretch")
    _quality_cost_chart(s)


def _quality_cost_chart(s: pd.DataFrame) -> None:
    d = s.dropna(subset=["cost_per_call_usd", "rating"])
    if d.empty:
        st.caption("The quality-against-cost chart needs priced calls; these models have no price.")
        return
    fig = go.Figure(go.Scatter(
        x=d.cost_per_call_usd, y=d.rating, mode="markers+text", text=d.label, textposition="top center",
        error_y={"type": "data", "symmetric": False, "array": d.rating_high - d.rating,
                 "arrayminus": d.rating - d.rating_low},
        hovertemplate="%{text}<br>$%{x:.5f} per call<br>rating %{y:.0f}<extra></extra>"))
    low, high = float(d.cost_per_call_usd.min()), float(d.cost_per_call_usd.max())
    pad = (high - low) * 0.2 or high * 0.2 or 1e-6
    fig.update_layout(title="Quality against cost", xaxis_title="Cost per call (USD)",
                      yaxis_title="Rating (95% CI)", height=380, margin={"t": 50, "b": 40},
                      xaxis={"range": [max(0.0, low - pad), high + pad], "tickprefix": "$", "tickformat": ".5f"})
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
        cols = {"arm": "Arm", "requests": "Requests", "success_rate": "Success", "success_low": "Low",
                "success_high": "High", "mean_latency_ms": "Mean ms", "p95_latency_ms": "p95 ms",
                "cost_per_call_usd": "Cost/call $", "served_by": "Mostly served by"}
        st.dataframe(a.arms[list(cols)].rename(columns=cols), hide_index=True, width="stretch")
