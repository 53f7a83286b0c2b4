"""Blind votes, the both-orders LLM judge, and the results built from them."""
from __future__ import annotations

import random
from decimal import Decimal

import pytest

from taelio_core.errors import InputError
from taelio_core.experiments import ExperimentSpec, Experiments, VariantSpec, next_matchup, parse_csv
from taelio_core.experiments.judge import parse_judgment
from taelio_core.experiments.voting import mask_names
from tests.experiments.virtual_time import run_virtual


@pytest.fixture
def ran(experiments: Experiments):  # noqa: ANN201
    spec = ExperimentSpec(name="t", variants=[VariantSpec(model="sim:a", label="alpha"),
                                              VariantSpec(model="sim:b", label="beta"),
                                              VariantSpec(model="sim:c", label="gamma")])
    exp = experiments.store.create(spec, parse_csv("prompt\n" + "\n".join(f"idea {i}" for i in range(6))))
    run_virtual(experiments.runner.arun(exp.experiment_id))
    return exp


def test_matchups_are_blind_balanced_and_randomly_sided(experiments: Experiments, ran) -> None:  # noqa: ANN001
    rng = random.Random(4)
    seen_pairs: dict[tuple[str, str], int] = {}
    left_first = 0
    for _ in range(18):   # 6 inputs x 3 pairs: one vote each before any repeats
        m = next_matchup(experiments.store, ran, rng=rng)
        assert m is not None and m.left != m.right
        cells = experiments.store.cells(ran.experiment_id)
        assert m.left_text == mask_names(cells[(m.input_id, m.left)].output, ran)
        key = tuple(sorted((m.left, m.right)))
        seen_pairs[key] = seen_pairs.get(key, 0) + 1
        left_first += m.left == key[0]
        experiments.store.add_vote(ran.experiment_id, m.input_id, m.left, m.right, "left", voter="ana")
    assert seen_pairs == {("v1", "v2"): 6, ("v1", "v3"): 6, ("v2", "v3"): 6}
    assert 3 <= left_first <= 15          # sides are drawn, not fixed
    votes = experiments.store.votes(ran.experiment_id)
    assert len(votes) == 18 and set(votes.voter) == {"ana"} and votes.ts.notna().all()
    assert (votes.winner == votes.left_variant).all()
    with pytest.raises(InputError, match="a vote is one of left, right, tie, both_bad"):
        experiments.store.add_vote(ran.experiment_id, 1, "v1", "v2", "maybe")


def test_votes_drive_the_leaderboard_verdict_and_cost_per_win(experiments: Experiments, ran) -> None:  # noqa: ANN001
    eid = ran.experiment_id
    for input_id in range(1, 7):
        for _ in range(5):
            experiments.store.add_vote(eid, input_id, "v2", "v1", "left")       # beta beats alpha 30-0
        experiments.store.add_vote(eid, input_id, "v3", "v1", "tie")
        experiments.store.add_vote(eid, input_id, "v3", "v2", "both_bad")
    res = experiments.results(eid, n_boot=100)
    assert res.leaderboard_source == "votes"
    assert [n for n, *_ in res.leaderboard.ranked()][0] == "v2"
    assert res.pair is not None and set(res.pair) == {"v1", "v2"}
    assert res.verdict.decided and res.verdict.text.startswith("beta beats alpha: 100% of decided votes")
    row = res.summary.set_index("variant").loc["v2"]
    assert row.wins == 30 and row.losses == 0 and row.both_bad == 6
    assert row.cost_per_win_usd == pytest.approx(row.total_cost_usd / 30)
    assert res.summary.set_index("variant").loc["v1"].ties == 6
    assert res.flags.unvoted.sum() == 0 and not res.flags.disagreement.any()
    assert res.as_dict()["verdict"] == res.verdict.text


def test_disagreeing_votes_and_unvoted_inputs_are_flagged(experiments: Experiments, ran) -> None:  # noqa: ANN001
    eid = ran.experiment_id
    experiments.store.add_vote(eid, 1, "v1", "v2", "left")
    experiments.store.add_vote(eid, 1, "v2", "v1", "left")
    flags = experiments.results(eid, n_boot=20).flags.set_index("input_id")
    assert flags.loc[1].disagreement and not flags.loc[1].unvoted
    assert flags.loc[2].unvoted and not flags.loc[2].disagreement


def test_parse_judgment() -> None:
    assert parse_judgment("SCORE_A: 7\nSCORE_B: 4\nWINNER: A") == ("A", 7.0, 4.0)
    assert parse_judgment("**WINNER: tie**, SCORE_A = 5, SCORE_B=5") == ("TIE", 5.0, 5.0)
    assert parse_judgment("I cannot decide.") == (None, None, None)


def test_the_judge_asks_both_orders_and_counts_only_consistent_verdicts(experiments, ran, sim, log) -> None:  # noqa: ANN001
    eid = ran.experiment_id
    run_virtual(experiments.judge.arun(eid))
    j = experiments.store.judgments(eid)
    assert len(j) == 18                                  # 6 inputs x 3 pairs
    # The simulated judge breaks equal scores for whichever answer came first: those pairs
    # disagree between orders and must not count; every other pair must.
    equal = j.score_a == j.score_b
    assert (j.consistent == ~equal).all()
    assert j[~j.consistent].winner.isna().all()
    consistent = j[j.consistent]
    assert ((consistent.winner == consistent.variant_a) == (consistent.score_a > consistent.score_b)).all()
    log.flush()
    calls = log.query("SELECT * FROM requests WHERE routing_reason = 'experiment judge'")
    assert len(calls) == 36 and set(calls.source) == {"experiment"} and (calls.cost_usd > 0).all()
    assert set(calls.model) == {"judge"}
    total = sum(Decimal(str(c)) for c in j.cost_usd)
    assert total == pytest.approx(Decimal(str(calls.cost_usd.sum())))
    res = experiments.results(eid, n_boot=50)
    assert res.leaderboard_source == "judge" and res.judge_verdict is not None
    assert res.judge_scores is not None and res.judge_scores.n == 6
    # a second run judges nothing new
    again = run_virtual(experiments.judge.arun(eid))
    assert again.run_total == 0


def test_the_judge_says_why_it_cannot_run_without_a_judge_table(sim, log, tmp_path) -> None:  # noqa: ANN001
    from taelio_core.config.policy_parser import parse_policy
    from taelio_core.routing.router import Router
    from tests.experiments.conftest import POLICY
    policy = parse_policy(POLICY.split("[judge]")[0], source="nojudge.toml")
    ex = Experiments.open(Router(policy, {"sim": sim}, sink=log), log)
    assert "nojudge.toml has no [judge] table" in ex.judge.unavailable_reason()
    with pytest.raises(InputError, match="the LLM judge cannot run"):
        ex.judge.run("whatever")


def test_vote_texts_hide_the_names_of_the_variants(experiments: Experiments, ran) -> None:  # noqa: ANN001
    m = next_matchup(experiments.store, ran, rng=random.Random(1))
    raw = experiments.store.cells(ran.experiment_id)[(m.input_id, m.left)].output
    assert raw.startswith("[simulated sim:")            # the simulator signs its answers
    assert m.left_text.startswith("[simulated ▒▒▒]") and "sim:" not in m.left_text + m.right_text
    assert "alpha" not in m.left_text + m.right_text


def test_four_votes_to_none_is_not_decided_and_the_page_and_cli_say_so(experiments: Experiments, ran) -> None:  # noqa: ANN001
    eid = ran.experiment_id
    for input_id in range(1, 5):
        experiments.store.add_vote(eid, input_id, "v2", "v1", "left")        # beta 4, alpha 0
    res = experiments.results(eid, pair=("v1", "v2"), n_boot=20)
    assert not res.verdict.decided and res.verdict.leader == "beta"
    assert res.verdict.text.startswith("Not decided yet: beta leads alpha 4–0")
    # three variants are three pairs: Holm multiplies the smallest p by 3 (0.125 -> 0.375)
    assert res.verdict.pairs == 3 and res.verdict.p_adjusted == pytest.approx(0.375)
    detail = res.as_dict()["verdict_detail"]
    assert detail["decided"] is False and detail["more_votes_needed"] == res.verdict.more_needed >= 3


def test_six_to_none_wins_alone_but_not_among_three_pairs_until_the_holm_corrected_test_passes(
        experiments: Experiments, ran) -> None:  # noqa: ANN001
    eid = ran.experiment_id
    for input_id in range(1, 7):
        experiments.store.add_vote(eid, input_id, "v2", "v1", "left")        # beta 6-0: p = 0.031 alone
    res = experiments.results(eid, pair=("v1", "v2"), n_boot=20)
    assert not res.verdict.decided and "0.094 after Holm's correction for 3 pairs" in res.verdict.text
    for input_id in range(1, 3):
        experiments.store.add_vote(eid, input_id, "v1", "v2", "right")       # 8-0: p = 0.0078, x3 = 0.023
    res = experiments.results(eid, pair=("v1", "v2"), n_boot=20)
    assert res.verdict.decided and res.verdict.text.startswith("beta beats alpha: 100% of decided votes")


def test_the_judge_verdict_follows_the_same_rule(experiments: Experiments, ran) -> None:  # noqa: ANN001
    eid = ran.experiment_id

    def judged(input_id: int, winner: str | None, consistent: bool = True) -> None:
        experiments.store.save_judgment(eid, {
            "input_id": input_id, "variant_a": "v1", "variant_b": "v2", "winner_ab": winner, "winner_ba": winner,
            "consistent": consistent, "winner": winner if consistent else None, "score_a": 3.0, "score_b": 8.0,
            "cost_usd": None, "request_ids": ""})

    for input_id in range(1, 5):
        judged(input_id, "v2")
    judged(5, "v1", consistent=False)                   # inconsistent orders never count
    res = experiments.results(eid, pair=("v1", "v2"), n_boot=20)
    assert not res.judge_verdict.decided and res.judge_verdict.text.startswith("Not decided yet: beta leads alpha 4–0")
    assert res.judge_verdict.pairs == 3
