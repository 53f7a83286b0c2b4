"""An experiment's results: per-variant numbers, the matrix, the leaderboard and the verdict.

Everything the Compare page and ``taelio experiment results`` show comes
from here, so both say the same thing. Money in the tables is float USD for
charting, NaN where a call could not be priced (never 0).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from taelio_core.experiments.assertions import check
from taelio_core.experiments.model import Experiment
from taelio_core.experiments.store import ExperimentStore
from taelio_core.experiments.stats import (
    BradleyTerry,
    PairedDifference,
    Verdict,
    bradley_terry,
    holm,
    paired_bootstrap,
    sign_test,
    verdict,
    wilson,
)

__all__ = ["ExperimentResults", "results"]


@dataclass(frozen=True, kw_only=True)
class ExperimentResults:
    experiment: Experiment
    summary: pd.DataFrame            # one row per variant
    matrix: pd.DataFrame             # one row per input x variant
    flags: pd.DataFrame              # one row per input: has_error, disagreement, unvoted
    leaderboard: BradleyTerry | None     # from human votes (or the judge when there are none)
    leaderboard_source: str          # "votes" | "judge" | ""
    pair: tuple[str, str] | None
    verdict: Verdict | None          # human votes on ``pair``
    judge_verdict: Verdict | None    # consistent judge verdicts on ``pair``
    judge_scores: PairedDifference | None
    n_votes: int
    n_judged: int

    def label(self, variant_id: str) -> str:
        return self.experiment.labels.get(variant_id, variant_id)

    def as_dict(self) -> dict[str, object]:
        def clean(df: pd.DataFrame) -> list[dict[str, object]]:
            return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                    for row in df.to_dict("records")]
        board = None
        if self.leaderboard is not None:
            board = [{"variant": n, "label": self.label(n), "rating": round(r, 1), "low": round(lo, 1),
                      "high": round(hi, 1)} for n, r, lo, hi in self.leaderboard.ranked()]
        return {"experiment_id": self.experiment.experiment_id, "name": self.experiment.name,
                "summary": clean(self.summary), "leaderboard": board, "leaderboard_source": self.leaderboard_source,
                "pair": list(self.pair) if self.pair else None,
                "verdict": self.verdict.text if self.verdict else None,
                "verdict_detail": _verdict_dict(self.verdict),
                "judge_verdict": self.judge_verdict.text if self.judge_verdict else None,
                "judge_verdict_detail": _verdict_dict(self.judge_verdict),
                "judge_score_difference": None if self.judge_scores is None or self.judge_scores.n == 0 else {
                    "mean_a": self.judge_scores.mean_a, "mean_b": self.judge_scores.mean_b,
                    "diff": self.judge_scores.diff, "low": self.judge_scores.low, "high": self.judge_scores.high,
                    "n": self.judge_scores.n},
                "checks": [{"id": a.assertion_id, "check": a.label} for a in self.experiment.assertions],
                "votes": self.n_votes, "judged_pairs": self.n_judged}


def _verdict_dict(v: Verdict | None) -> dict[str, object] | None:
    if v is None:
        return None
    return {"decided": v.decided, "leader": v.leader, "share": v.share, "p_value": v.p_value,
            "p_adjusted": v.p_adjusted, "pairs": v.pairs, "more_votes_needed": v.more_needed}


def results(store: ExperimentStore, experiment_id: str, *, pair: tuple[str, str] | None = None,
            n_boot: int = 300) -> ExperimentResults:
    experiment = store.load(experiment_id)
    ids = [v.variant_id for v in experiment.variants]
    cells = store.cells(experiment_id)
    votes = store.votes(experiment_id)
    judged = store.judgments(experiment_id)
    rows = []
    for row in experiment.inputs:
        for v in experiment.variants:
            c = cells.get((row.input_id, v.variant_id))
            rows.append({"input_id": row.input_id, "prompt": row.prompt, "variant": v.variant_id, "label": v.label,
                         "status": c.status if c else "pending", "output": c.output if c else "",
                         "error": c.error if c else None, "latency_ms": c.latency_ms if c else None,
                         "input_tokens": c.input_tokens if c else None, "output_tokens": c.output_tokens if c else None,
                         "cost_usd": float(c.cost_usd) if c and c.cost_usd is not None else None,
                         "tries": c.tries if c else 0})
    matrix = _with_checks(experiment, pd.DataFrame(rows), store.grades(experiment_id) if experiment.assertions
                          else None)

    human = [(r.left_variant, r.right_variant, {"left": 1.0, "right": 0.0, "tie": 0.5}[r.choice])
             for r in votes.itertuples() if r.choice != "both_bad"]
    judge_cmp = []
    for r in judged.itertuples():
        if r.consistent:
            judge_cmp.append((r.variant_a, r.variant_b, 0.5 if r.winner is None or pd.isna(r.winner)
                              else (1.0 if r.winner == r.variant_a else 0.0)))
    board, source = None, ""
    if human:
        board, source = bradley_terry(human, ids, n_boot=n_boot), "votes"
    elif judge_cmp:
        board, source = bradley_terry(judge_cmp, ids, n_boot=n_boot), "judge"

    summary = _summary(experiment, matrix, votes, judged, board)
    if pair is None and len(ids) >= 2:
        if board is not None:
            # The leader against the rival it has the most decided votes with (ties: the higher rated).
            ranked = [name for name, *_ in board.ranked()]
            leader = ranked[0]
            decided = votes[votes.winner.notna()]

            def direct(other: str) -> int:
                return int((((decided.left_variant == leader) & (decided.right_variant == other))
                            | ((decided.left_variant == other) & (decided.right_variant == leader))).sum())
            rival = max(ranked[1:], key=lambda o: (direct(o), -ranked.index(o)))
            pair = (rival, leader)
        else:
            pair = (ids[0], ids[1])
    the_verdict = judge_verdict = scores = None
    if pair is not None:
        a, b = pair
        vote_outcomes = pd.DataFrame({"x": votes.left_variant, "y": votes.right_variant, "winner": votes.winner,
                                      "both_bad": votes.choice == "both_bad"})
        the_verdict = _pair_verdict(experiment, ids, vote_outcomes, pair)
        jp = judged[((judged.variant_a == a) & (judged.variant_b == b))
                    | ((judged.variant_a == b) & (judged.variant_b == a))]
        if not jp.empty:
            ok = judged[judged.consistent]
            judge_outcomes = pd.DataFrame({"x": ok.variant_a, "y": ok.variant_b, "winner": ok.winner,
                                           "both_bad": False})
            judge_verdict = _pair_verdict(experiment, ids, judge_outcomes, pair)
            sa = np.where(jp.variant_a == a, jp.score_a, jp.score_b).astype(float)
            sb = np.where(jp.variant_a == a, jp.score_b, jp.score_a).astype(float)
            keep = ~(np.isnan(sa) | np.isnan(sb))
            scores = paired_bootstrap(sa[keep], sb[keep])
    return ExperimentResults(experiment=experiment, summary=summary, matrix=matrix,
                             flags=_flags(experiment, matrix, votes, judged), leaderboard=board,
                             leaderboard_source=source, pair=pair, verdict=the_verdict, judge_verdict=judge_verdict,
                             judge_scores=scores, n_votes=len(votes), n_judged=len(judged))


def _with_checks(experiment: Experiment, matrix: pd.DataFrame, grades: pd.DataFrame | None) -> pd.DataFrame:
    """Adds per cell: ``checks_total``, ``checks_passed`` and ``checks_failed`` (the failing checks, why)."""
    if not experiment.assertions:
        return matrix.assign(checks_total=0, checks_passed=0, checks_failed="")
    graded = {} if grades is None else {(int(r.input_id), r.variant_id, r.assertion_id): r
                                        for r in grades.itertuples()}
    variables = {row.input_id: row.variables for row in experiment.inputs}
    totals, passes, failed = [], [], []
    for r in matrix.itertuples():
        total = passed = 0
        why: list[str] = []
        if r.status == "ok":
            for a in experiment.assertions:
                if not a.applies_to(r.variant):
                    continue
                ok, detail = check(a, r.output, variables[r.input_id])
                if ok is None:                      # a rubric: counts once graded
                    g = graded.get((r.input_id, r.variant, a.assertion_id))
                    if g is None or pd.isna(g.passed):
                        continue
                    ok, detail = bool(g.passed), g.detail or "fails the rubric"
                total += 1
                passed += ok
                if not ok:
                    why.append(f"{a.label} ({detail})")
        totals.append(total)
        passes.append(passed)
        failed.append("; ".join(why))
    return matrix.assign(checks_total=totals, checks_passed=passes, checks_failed=failed)


def _pair_verdict(experiment: Experiment, ids: list[str], outcomes: pd.DataFrame, pair: tuple[str, str]) -> Verdict:
    """The verdict on ``pair``, its sign test Holm-corrected over every pair of the experiment's variants.

    Every pair counts in the family, voted on or not: the page lets anyone pick
    any pair, so a winner must survive the number of pairs one could look at.
    ``outcomes`` has one row per comparison: ``x``, ``y``, ``winner`` (NaN for a
    tie) and ``both_bad``.
    """
    tallies: dict[tuple[str, str], tuple[int, int, int, int]] = {}
    for x, y in itertools.combinations(ids, 2):
        rows = outcomes[((outcomes.x == x) & (outcomes.y == y)) | ((outcomes.x == y) & (outcomes.y == x))]
        bad = int(rows.both_bad.sum())
        tallies[(x, y)] = (int((rows.winner == x).sum()), int((rows.winner == y).sum()),
                           int((rows.winner.isna() & ~rows.both_bad).sum()), bad)
    keys = list(tallies)
    adjusted = dict(zip(keys, holm([sign_test(t[0], t[1]).p_value for t in tallies.values()]), strict=True))
    a, b = pair
    key = (a, b) if (a, b) in tallies else (b, a)
    wx, wy, ties, bad = tallies[key]
    wins_a, wins_b = (wx, wy) if key == (a, b) else (wy, wx)
    return verdict(experiment.labels[a], experiment.labels[b], wins_a, wins_b, ties, bad,
                   p_adjusted=adjusted[key], pairs=len(keys))


def _summary(experiment: Experiment, matrix: pd.DataFrame, votes: pd.DataFrame, judged: pd.DataFrame,
             board: BradleyTerry | None) -> pd.DataFrame:
    out = []
    for v in experiment.variants:
        m = matrix[(matrix.variant == v.variant_id) & (matrix.status != "pending")]
        ok = m[m.status == "ok"]
        lat = ok.latency_ms.dropna().astype(float)
        costs = m.cost_usd
        priced = costs.notna().all() and len(m) > 0
        total_cost = float(costs.sum()) if priced else math.nan
        involved = votes[(votes.left_variant == v.variant_id) | (votes.right_variant == v.variant_id)]
        wins = int((involved.winner == v.variant_id).sum())
        ties = int((involved.choice == "tie").sum())
        both_bad = int((involved.choice == "both_bad").sum())
        losses = len(involved) - wins - ties - both_bad
        ci = wilson(wins, wins + losses)
        rating = low = high = math.nan
        if board is not None:
            i = board.names.index(v.variant_id)
            rating, low, high = board.rating[i], board.low[i], board.high[i]
        scores = pd.concat([judged.loc[judged.variant_a == v.variant_id, "score_a"],
                            judged.loc[judged.variant_b == v.variant_id, "score_b"]]).dropna()
        out.append({
            "variant": v.variant_id, "label": v.label, "model": v.ref, "calls": len(m), "ok": len(ok),
            "error_rate": (1 - len(ok) / len(m)) if len(m) else math.nan,
            "mean_latency_ms": float(lat.mean()) if len(lat) else math.nan,
            "p95_latency_ms": float(np.quantile(lat, 0.95)) if len(lat) else math.nan,
            "cost_per_call_usd": total_cost / len(m) if len(m) and priced else math.nan,
            "total_cost_usd": total_cost,
            "mean_input_tokens": float(ok.input_tokens.mean()) if len(ok) else math.nan,
            "mean_output_tokens": float(ok.output_tokens.mean()) if len(ok) else math.nan,
            "wins": wins, "losses": losses, "ties": ties, "both_bad": both_bad,
            "win_rate": ci.estimate, "win_low": ci.low if wins + losses else math.nan,
            "win_high": ci.high if wins + losses else math.nan,
            "cost_per_win_usd": total_cost / wins if wins and priced else math.nan,
            "rating": rating, "rating_low": low, "rating_high": high,
            "judge_score": float(scores.mean()) if len(scores) else math.nan,
            **({"assertion_pass_rate": (float(m.checks_passed.sum() / m.checks_total.sum())
                                        if m.checks_total.sum() else math.nan)} if experiment.assertions else {}),
        })
    return pd.DataFrame(out)


def _flags(experiment: Experiment, matrix: pd.DataFrame, votes: pd.DataFrame, judged: pd.DataFrame) -> pd.DataFrame:
    """Per input: any failed cell; votes (or judge orders, or votes vs judge) that disagree; no votes yet."""
    out = []
    for row in experiment.inputs:
        m = matrix[matrix.input_id == row.input_id]
        v = votes[votes.input_id == row.input_id]
        j = judged[judged.input_id == row.input_id]
        disagreement = bool((~j.consistent).any()) if len(j) else False
        for (a, b), group in v.groupby([v[["left_variant", "right_variant"]].min(axis=1),
                                        v[["left_variant", "right_variant"]].max(axis=1)]):
            outcomes = set(group.winner.fillna("none"))
            if len(outcomes) > 1:
                disagreement = True
            jr = j[(j.variant_a == a) & (j.variant_b == b) & j.consistent]
            if len(jr) and len(outcomes) == 1 and jr.winner.fillna("none").iloc[0] != next(iter(outcomes)):
                disagreement = True
        out.append({"input_id": row.input_id, "prompt": row.prompt,
                    "has_error": bool((~m.status.isin(["ok", "pending"])).any()),
                    "disagreement": disagreement, "unvoted": len(v) == 0, "votes": len(v)})
    return pd.DataFrame(out)
