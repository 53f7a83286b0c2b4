"""The statistics behind the Compare page's verdicts, so a team can defend them.

A difference seen by eye in a handful of votes is usually noise. Everything
here says how sure we are:

* ``wilson``: a 95% interval for a rate (a win rate, a success rate). Unlike
  the textbook "p ± 1.96·se" it behaves at 0, at 1 and with small n.
* ``sign_test``: two variants judged on the same inputs. Ties and "both bad"
  carry no preference, so only decided votes count, and the exact binomial
  test asks whether the split differs from 50/50 (the exact McNemar test).
* ``paired_bootstrap``: the mean difference of paired scores (judge scores of
  two variants on the same inputs), with a percentile interval.
* ``bradley_terry``: three or more variants. Strengths fitted by maximum
  likelihood (Hunter's MM algorithm; a tie is half a win each way), an
  Elo-scaled rating with bootstrap intervals, and the matrix of win
  probabilities.
* ``holm``: the correction for looking at many pairs at once; a verdict
  needs the Holm-corrected sign test below 0.05, not a lead in a handful.
* ``comparisons_needed``, ``decided_votes_to_decide`` and ``verdict``: the
  plain sentence the page shows, with the votes still likely needed.

Pure numpy/scipy: no I/O, no pandas, deterministic for a given seed.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

__all__ = [
    "BradleyTerry",
    "Interval",
    "PairedDifference",
    "SignTest",
    "Verdict",
    "bradley_terry",
    "comparisons_needed",
    "decided_votes_to_decide",
    "holm",
    "paired_bootstrap",
    "sign_test",
    "verdict",
    "wilson",
]

Z95 = float(sps.norm.ppf(0.975))
ELO_SCALE = 400.0 / math.log(10.0)   # rating points per unit of log-strength
ELO_BASE = 1000.0


@dataclass(frozen=True, kw_only=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int

    def excludes(self, value: float) -> bool:
        return value < self.low or value > self.high


def wilson(successes: int, n: int, *, z: float = Z95) -> Interval:
    """Wilson score interval for ``successes`` out of ``n`` (95% by default)."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return Interval(estimate=math.nan, low=0.0, high=1.0, n=0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(estimate=p, low=max(0.0, centre - half), high=min(1.0, centre + half), n=n)


@dataclass(frozen=True, kw_only=True)
class SignTest:
    wins_a: int
    wins_b: int
    p_value: float

    @property
    def decided(self) -> int:
        return self.wins_a + self.wins_b


def sign_test(wins_a: int, wins_b: int) -> SignTest:
    """Exact two-sided binomial test of a preference split against 50/50.

    This is the exact McNemar test: ``wins_a`` and ``wins_b`` are the
    discordant pairs; ties and "both bad" are left out by the caller.
    """
    n = wins_a + wins_b
    p = 1.0 if n == 0 else float(sps.binomtest(wins_b, n, 0.5, alternative="two-sided").pvalue)
    return SignTest(wins_a=wins_a, wins_b=wins_b, p_value=p)


@dataclass(frozen=True, kw_only=True)
class PairedDifference:
    mean_a: float
    mean_b: float
    diff: float          # mean of (b - a)
    low: float
    high: float
    n: int
    p_value: float       # two-sided bootstrap p for "no difference"

    @property
    def significant(self) -> bool:
        return self.n > 0 and (self.low > 0 or self.high < 0)


def paired_bootstrap(scores_a: Sequence[float], scores_b: Sequence[float], *, n_boot: int = 4000,
                     seed: int = 0, level: float = 0.95) -> PairedDifference:
    """Mean of ``b - a`` over paired scores, with a percentile bootstrap interval."""
    a = np.asarray(scores_a, dtype=float)
    b = np.asarray(scores_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal lengths, got {a.size} and {b.size}")
    if a.size == 0:
        return PairedDifference(mean_a=math.nan, mean_b=math.nan, diff=math.nan, low=math.nan, high=math.nan,
                                n=0, p_value=1.0)
    d = b - a
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    means = d[idx].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    # Share of resampled means on the far side of zero, doubled (two-sided).
    p = min(1.0, 2 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    if np.all(d == 0):
        p = 1.0
    return PairedDifference(mean_a=float(a.mean()), mean_b=float(b.mean()), diff=float(d.mean()),
                            low=float(low), high=float(high), n=int(d.size), p_value=p)


@dataclass(frozen=True, kw_only=True)
class BradleyTerry:
    names: tuple[str, ...]
    rating: tuple[float, ...]        # Elo scale, mean 1000
    low: tuple[float, ...]
    high: tuple[float, ...]
    win_prob: tuple[tuple[float, ...], ...]   # [i][j] = P(i beats j)
    n_comparisons: int

    def ranked(self) -> list[tuple[str, float, float, float]]:
        rows = zip(self.names, self.rating, self.low, self.high, strict=True)
        return sorted(rows, key=lambda r: -r[1])


def _fit_bt(wins: np.ndarray, prior: float, iters: int = 500, tol: float = 1e-10) -> np.ndarray:
    """Log-strengths (mean 0) by Hunter's MM algorithm. ``wins[i, j]``: times i beat j (ties as halves)."""
    k = wins.shape[0]
    w = wins + prior * (1 - np.eye(k))
    games = w + w.T
    total = w.sum(axis=1)
    p = np.ones(k)
    for _ in range(iters):
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1)
        new = total / denom
        new /= np.exp(np.mean(np.log(new)))
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    return np.log(p) - np.mean(np.log(p))


def _standard_errors(wins: np.ndarray, theta: np.ndarray, prior: float) -> np.ndarray:
    """Standard errors of the log-strengths (mean-0 constraint) from the Fisher information."""
    k = wins.shape[0]
    w = wins + prior * (1 - np.eye(k))
    games = w + w.T
    p = np.exp(theta)
    pij = p[:, None] / (p[:, None] + p[None, :])
    info = -games * pij * (1 - pij)
    np.fill_diagonal(info, 0.0)
    np.fill_diagonal(info, -info.sum(axis=1))
    cov = np.linalg.pinv(info)
    return np.sqrt(np.clip(np.diag(cov), 0.0, None))


def bradley_terry(comparisons: Sequence[tuple[str, str, float]], names: Sequence[str] | None = None, *,
                  n_boot: int = 300, seed: int = 0, prior: float = 0.1, level: float = 0.95) -> BradleyTerry:
    """Fit Bradley–Terry to ``(a, b, score_a)`` comparisons: score 1 = a won, 0 = b won, 0.5 = tie.

    ``prior`` adds that many virtual wins each way to every pair, so a
    variant that never won still gets a finite rating. Intervals come from a
    bootstrap over comparisons.
    """
    order = list(names) if names is not None else sorted({n for a, b, _ in comparisons for n in (a, b)})
    index = {name: i for i, name in enumerate(order)}
    k = len(order)
    if k < 2:
        raise ValueError("Bradley–Terry needs at least two variants")
    # Each comparison becomes one of three outcomes per ordered pair; resampling counts is enough.
    cats: dict[tuple[int, int, float], int] = {}
    for a, b, s in comparisons:
        if s not in (0, 0.5, 1):
            raise ValueError(f"a comparison's score is 1, 0.5 or 0, got {s!r}")
        key = (index[a], index[b], float(s))
        cats[key] = cats.get(key, 0) + 1
    keys = list(cats)
    counts = np.array([cats[key] for key in keys], dtype=float)

    def wins_from(c: np.ndarray) -> np.ndarray:
        wins = np.zeros((k, k))
        for (i, j, s), n in zip(keys, c, strict=True):
            wins[i, j] += n * s
            wins[j, i] += n * (1 - s)
        return wins

    theta = _fit_bt(wins_from(counts), prior)
    n = int(counts.sum())
    if n > 0 and n_boot > 0:
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(n, counts / n, size=n_boot)
        boots = np.array([_fit_bt(wins_from(c.astype(float)), prior, iters=200, tol=1e-8) for c in draws])
        tail = (1 - level) / 2
        low, high = np.quantile(boots, [tail, 1 - tail], axis=0)
        # With few votes, or all of one kind, resamples barely vary and the percentile interval
        # collapses. Take the union with the Wald interval from the observed information, which
        # stays honest there; with plenty of votes the two agree.
        se = _standard_errors(wins_from(counts), theta, prior)
        z = float(sps.norm.ppf(1 - tail))
        low, high = np.minimum(low, theta - z * se), np.maximum(high, theta + z * se)
    else:
        low, high = np.full(k, -np.inf), np.full(k, np.inf)
    strength = np.exp(theta)
    prob = strength[:, None] / (strength[:, None] + strength[None, :])
    to_elo = lambda x: tuple(float(ELO_BASE + ELO_SCALE * v) for v in x)  # noqa: E731
    return BradleyTerry(names=tuple(order), rating=to_elo(theta), low=to_elo(low), high=to_elo(high),
                        win_prob=tuple(tuple(float(v) for v in row) for row in prob), n_comparisons=n)


def comparisons_needed(delta: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Decided votes needed to detect a win rate of 50% + ``delta`` (two-sided, exact-ish normal formula)."""
    if not 0 < delta < 0.5:
        raise ValueError("delta is a share between 0 and 0.5")
    p1 = 0.5 + delta
    z_a = float(sps.norm.ppf(1 - alpha / 2))
    z_b = float(sps.norm.ppf(power))
    return math.ceil(((z_a * 0.5 + z_b * math.sqrt(p1 * (1 - p1))) / delta) ** 2)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    Looking at many pairs and reporting the one that "won" finds a winner by
    chance; Holm's correction keeps the chance of any false verdict among
    them at alpha, and is never weaker than Bonferroni.
    """
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def decided_votes_to_decide(lead_wins: int, decided: int, *, multiplier: float = 1.0, alpha: float = 0.05,
                            limit: int = 1_000_000) -> int | None:
    """Decided votes in all at which the leader, keeping its observed share, would pass the exact sign test.

    The p-value is multiplied by ``multiplier`` (the number of pairs, for a
    Bonferroni-bounded Holm family). None for a level split, or beyond ``limit``.
    """
    if decided == 0 or 2 * lead_wins == decided:
        return None
    share = max(lead_wins, decided - lead_wins) / decided

    def passes(n: int) -> bool:
        k = round(share * n)
        return multiplier * float(sps.binomtest(k, n, 0.5).pvalue) < alpha

    if passes(decided):
        return decided
    low, high = decided, max(decided + 1, 2 * decided)
    while not passes(high):           # the p-value falls roughly geometrically with n at a fixed share
        if high > limit:
            return None
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if passes(mid) else (mid, high)
    return high


@dataclass(frozen=True, kw_only=True)
class Verdict:
    text: str
    decided: bool                 # the sign test, Holm-corrected over ``pairs``, is below alpha
    leader: str | None
    share: float | None           # the leader's share of decided votes
    interval: Interval | None
    p_value: float                # exact sign test on this pair
    p_adjusted: float             # after Holm's correction over ``pairs``
    pairs: int                    # pairs in the family the correction covers
    more_needed: int | None       # further votes (ties included, at the observed rate) likely needed


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def verdict(name_a: str, name_b: str, wins_a: int, wins_b: int, ties: int = 0, both_bad: int = 0, *,
            p_adjusted: float | None = None, pairs: int = 1, alpha: float = 0.05,
            min_effect: float = 0.05) -> Verdict:
    """One sentence a team can defend.

    A leader is named a winner only when the exact sign test on decided votes,
    corrected by Holm over the ``pairs`` compared (pass ``p_adjusted`` from
    ``holm``), is below ``alpha``. Until then the sentence says "Not decided
    yet" and how many more votes would likely settle it if the split holds.
    """
    decided_votes = wins_a + wins_b
    total = decided_votes + ties + both_bad
    extra = _extra(ties, both_bad)
    test = sign_test(wins_a, wins_b)
    adjusted = test.p_value if p_adjusted is None else p_adjusted
    family = f", {adjusted:.3f} after Holm's correction for {pairs} pairs" if pairs > 1 else ""
    base = {"p_value": test.p_value, "p_adjusted": adjusted, "pairs": pairs}
    if decided_votes == 0:
        need = comparisons_needed(min_effect)
        text = (f"Not decided yet: no decided votes between {name_a} and {name_b}{extra}; about {need:,} decided "
                f"votes would detect a {min_effect * 100:.0f}-point difference.")
        return Verdict(text=text, decided=False, leader=None, share=None, interval=None, more_needed=need, **base)
    leader, loser, lead_wins = (name_b, name_a, wins_b) if wins_b >= wins_a else (name_a, name_b, wins_a)
    ci = wilson(lead_wins, decided_votes)
    score = f"{lead_wins}–{decided_votes - lead_wins}"
    share = f"{ci.estimate:.0%} of decided votes, 95% CI {ci.low * 100:.0f}–{ci.high * 100:.0f}%"
    if wins_a != wins_b and adjusted < alpha:
        text = (f"{leader} beats {loser}: {share}, n = {decided_votes}{extra}; exact sign test "
                f"{_p(test.p_value)}{family}.")
        return Verdict(text=text, decided=True, leader=leader, share=ci.estimate, interval=ci, more_needed=None,
                       **base)
    decided_rate = decided_votes / total if total else 1.0
    if wins_a == wins_b:
        effect = min_effect
        need = comparisons_needed(effect)
        text = (f"Not decided yet: {name_a} and {name_b} are level {score}, n = {decided_votes}{extra}; a level split "
                f"decides nothing however long it goes on; about {need:,} decided votes would detect a "
                f"{effect * 100:.0f}-point difference.")
        more = max(1, math.ceil((need - decided_votes) / decided_rate)) if need > decided_votes else None
        return Verdict(text=text, decided=False, leader=None, share=ci.estimate, interval=ci, more_needed=more,
                       **base)
    target = decided_votes_to_decide(lead_wins, decided_votes, multiplier=pairs, alpha=alpha)
    more = None if target is None else max(1, math.ceil((target - decided_votes) / decided_rate))
    ahead = (f"about {more:,} more vote{'s' if more != 1 else ''} would likely decide it if the split holds"
             if more is not None else "at this split no practical number of votes would decide it")
    text = (f"Not decided yet: {leader} leads {loser} {score} ({share}), n = {decided_votes}{extra}; exact sign "
            f"test {_p(test.p_value)}{family}, not below {alpha:g}; {ahead}.")
    return Verdict(text=text, decided=False, leader=leader, share=ci.estimate, interval=ci, more_needed=more, **base)


def _extra(ties: int, both_bad: int) -> str:
    parts = []
    if ties:
        parts.append(f"{ties} tie{'s' if ties != 1 else ''}")
    if both_bad:
        parts.append(f"{both_bad} both bad")
    return f" (plus {' and '.join(parts)})" if parts else ""
