"""The statistics module against published values and simulated data with a known truth."""
from __future__ import annotations

import math

import numpy as np
import pytest

from taelio_core.experiments.stats import (
    ELO_SCALE,
    bradley_terry,
    comparisons_needed,
    decided_votes_to_decide,
    holm,
    paired_bootstrap,
    sign_test,
    verdict,
    wilson,
)


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics in
# Medicine 17:857-872, Table II, method 3 (Wilson score interval without continuity correction).
@pytest.mark.parametrize(("successes", "n", "low", "high"), [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0000),
])
def test_wilson_matches_newcombes_table(successes: int, n: int, low: float, high: float) -> None:
    ci = wilson(successes, n)
    assert round(ci.low, 4) == low
    assert round(ci.high, 4) == high
    assert ci.estimate == successes / n


def test_wilson_rejects_impossible_counts_and_is_uninformative_at_zero() -> None:
    with pytest.raises(ValueError):
        wilson(5, 4)
    empty = wilson(0, 0)
    assert (empty.low, empty.high) == (0.0, 1.0)


def test_sign_test_textbook_example() -> None:
    # 20 paired preferences, 15 one way and 5 the other: exact two-sided p = 2 * P(X <= 5 | 20, 1/2)
    # = 2 * 21700 / 2^20 = 0.04139 (e.g. Conover, Practical Nonparametric Statistics, sign test).
    result = sign_test(5, 15)
    assert result.p_value == pytest.approx(2 * 21700 / 2**20, rel=1e-9)
    assert round(result.p_value, 4) == 0.0414
    assert sign_test(15, 5).p_value == pytest.approx(result.p_value)
    assert sign_test(10, 10).p_value == pytest.approx(1.0)
    assert sign_test(0, 0).p_value == 1.0


def test_sign_test_agrees_with_mcnemar_on_agrestis_approval_ratings() -> None:
    # Agresti, Categorical Data Analysis, Table 10.1: 150 vs 86 discordant pairs, McNemar z^2 = 17.36,
    # p < 0.0001. The exact test must agree to the order of magnitude.
    assert (150 - 86) ** 2 / (150 + 86) == pytest.approx(17.36, abs=0.01)
    assert sign_test(86, 150).p_value < 1e-4


def test_paired_bootstrap_finds_a_real_difference_and_not_a_fake_one() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(6.0, 1.0, size=60)
    better = a + 1.0 + rng.normal(0, 0.5, size=60)
    same = a + rng.normal(0, 0.5, size=60) - 0.0
    real = paired_bootstrap(a, better, seed=2)
    assert real.significant and real.low > 0.7 and real.high < 1.3
    assert real.diff == pytest.approx(float(np.mean(better - a)))
    noise = paired_bootstrap(a, same, seed=2)
    assert noise.low < 0 < noise.high and not noise.significant
    with pytest.raises(ValueError):
        paired_bootstrap([1, 2], [1])


def _simulate(strengths: dict[str, float], per_pair: int, seed: int) -> list[tuple[str, str, float]]:
    rng = np.random.default_rng(seed)
    names = list(strengths)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            p = math.exp(strengths[a]) / (math.exp(strengths[a]) + math.exp(strengths[b]))
            for won in rng.random(per_pair) < p:
                out.append((a, b, 1.0) if won else (a, b, 0.0))
    return out


def test_bradley_terry_recovers_known_strengths_within_its_intervals() -> None:
    truth = {"a": 0.8, "b": 0.2, "c": -0.3, "d": -0.7}   # log-strengths, mean 0
    comparisons = _simulate(truth, per_pair=150, seed=7)
    fit = bradley_terry(comparisons, list(truth), n_boot=300, seed=3)
    for i, name in enumerate(fit.names):
        true_rating = 1000 + ELO_SCALE * truth[name]
        assert fit.low[i] <= true_rating <= fit.high[i], (name, fit.low[i], true_rating, fit.high[i])
        assert fit.high[i] - fit.low[i] < 120   # informative, not just wide
    assert [r[0] for r in fit.ranked()] == ["a", "b", "c", "d"]
    p_ab = fit.win_prob[0][1]
    assert p_ab == pytest.approx(math.exp(0.8) / (math.exp(0.8) + math.exp(0.2)), abs=0.06)
    assert fit.win_prob[1][0] == pytest.approx(1 - p_ab)
    assert fit.n_comparisons == len(comparisons)


def test_bradley_terry_counts_ties_as_half_and_survives_a_variant_that_never_wins() -> None:
    even = bradley_terry([("x", "y", 0.5)] * 20, n_boot=50)
    assert even.rating[0] == pytest.approx(even.rating[1])
    shutout = bradley_terry([("x", "y", 1.0)] * 10, n_boot=50)
    assert math.isfinite(shutout.rating[1]) and shutout.rating[0] > shutout.rating[1] + 200
    with pytest.raises(ValueError):
        bradley_terry([("x", "y", 2.0)])


def test_comparisons_needed_matches_the_normal_approximation_formula() -> None:
    # n = ((z_.975 * 0.5 + z_.8 * sqrt(0.6 * 0.4)) / 0.1)^2 = 193.6 -> 194 for a 10-point difference
    assert comparisons_needed(0.10) == 194
    assert comparisons_needed(0.05) == 783
    assert comparisons_needed(0.05, power=0.9) > comparisons_needed(0.05)


def test_verdict_sentences() -> None:
    clear = verdict("A", "B", 46, 74, ties=10)
    assert clear.decided and clear.leader == "B"
    assert clear.text == ("B beats A: 62% of decided votes, 95% CI 53–70%, n = 120 (plus 10 ties); "
                          "exact sign test p = 0.013.")
    unclear = verdict("A", "B", 20, 25)
    assert not unclear.decided and unclear.more_needed and unclear.more_needed > 100
    assert unclear.text.startswith("Not decided yet: B leads A 25–20 (56% of decided votes")
    assert f"about {unclear.more_needed} more votes would likely decide it if the split holds" in unclear.text
    level = verdict("A", "B", 30, 30)
    assert "A and B are level 30–30" in level.text and level.leader is None and not level.decided
    none = verdict("A", "B", 0, 0, ties=3)
    assert not none.decided and "no decided votes" in none.text


def test_four_votes_to_none_is_not_a_winner_and_says_how_many_more_votes_would_decide() -> None:
    # The case: 4-0 was shown as "beats ... 100% of decided votes"; the exact sign test gives p = 0.125.
    four = verdict("default-gpt4", "terse-haiku", 0, 4)
    assert not four.decided and four.p_value == pytest.approx(0.125)
    assert four.text.startswith("Not decided yet: terse-haiku leads default-gpt4 4–0")
    # 6-0 is the first all-one-way split below 0.05 (p = 0.03125): two more votes if the split holds.
    assert four.more_needed == 2 and "about 2 more votes would likely decide it" in four.text
    # Ties do not count towards a decision, so at one tie per decided vote it takes twice as many votes.
    assert verdict("x", "y", 0, 4, ties=4).more_needed == 4


def test_a_clear_split_is_decided_and_holm_raises_the_bar_when_several_pairs_are_compared() -> None:
    ten = verdict("a", "b", 0, 10)
    assert ten.decided and ten.p_value == pytest.approx(2 / 1024)
    assert ten.text.endswith("n = 10; exact sign test p = 0.002.")
    six = sign_test(0, 6).p_value                       # 0.03125: decided alone, not among 3 pairs
    assert verdict("a", "b", 0, 6).decided
    adjusted = holm([six, 0.5, 1.0])
    assert adjusted[0] == pytest.approx(3 * six)
    among_three = verdict("a", "b", 0, 6, p_adjusted=adjusted[0], pairs=3)
    assert not among_three.decided and "0.094 after Holm's correction for 3 pairs" in among_three.text
    # with a Bonferroni-bounded multiplier of 3, 7-0 (p = 0.0156 x 3 = 0.047) is the first to pass
    assert among_three.more_needed == 1


def test_holm_adjusts_step_down_and_keeps_the_order_given() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.6, 0.6]) == pytest.approx([1.0, 1.0])
    assert decided_votes_to_decide(2, 4) is None           # level: never decides
    assert decided_votes_to_decide(4, 4) == 6
