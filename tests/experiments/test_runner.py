"""Running experiments: fan-out per input, bounded concurrency, resume, retry, cost cap, cancel.

Latencies are the simulator's exact (sigma 0) delays on a virtual-time loop,
so "wall time ~ slowest variant" is asserted on recorded times, not on the
speed of this machine.
"""
from __future__ import annotations

from decimal import Decimal

import pytest

from taelio_core.errors import ProviderUnavailable
from taelio_core.experiments import CancelToken, ExperimentSpec, Experiments, VariantSpec, parse_csv
from tests.experiments.conftest import LATENCY_MS
from taelio_core.formatting import money
from tests.experiments.virtual_time import run_virtual

CSV = "prompt,genre\n" + "\n".join(f"Premise number {i},Mystery" for i in range(1, 5)) + "\n"


def _create(experiments: Experiments, models: list[str], *, concurrency: int = 4, cap: str | None = None,
            csv: str = CSV):  # noqa: ANN202
    spec = ExperimentSpec(name="t", tier="pro", task="idea", concurrency=concurrency, inputs_kind="csv",
                          cost_cap_usd=Decimal(cap) if cap else None,
                          variants=[VariantSpec(model=f"sim:{m}") for m in models])
    return experiments.store.create(spec, parse_csv(csv))


def test_all_variants_of_an_input_run_at_once_so_wall_time_is_the_slowest_not_the_sum(experiments) -> None:
    exp = _create(experiments, ["a", "b", "c", "d"], concurrency=1)
    progress = run_virtual(experiments.runner.arun(exp.experiment_id))
    assert progress.state == "finished" and progress.done == 16
    cells = experiments.store.cells(exp.experiment_id)
    for row in exp.inputs:
        latencies = [cells[(row.input_id, v.variant_id)].latency_ms for v in exp.variants]
        assert latencies == pytest.approx([LATENCY_MS[m] for m in "abcd"], abs=1.0)
        wall = progress.input_wall_ms[row.input_id]
        assert wall == pytest.approx(max(latencies), abs=1.0)
        assert wall < 0.5 * sum(latencies)           # 1300 ms, not 3400 ms
    # concurrency=1 across inputs: the four inputs ran one after another.
    assert progress.elapsed_s == pytest.approx(4 * 1.3, abs=0.05)


@pytest.mark.parametrize(("concurrency", "rounds"), [(1, 4), (2, 2), (4, 1)])
def test_concurrency_across_inputs_is_bounded(experiments, concurrency: int, rounds: int) -> None:
    exp = _create(experiments, ["a", "d"], concurrency=concurrency)
    progress = run_virtual(experiments.runner.arun(exp.experiment_id))
    assert progress.elapsed_s == pytest.approx(rounds * 1.3, abs=0.05)


def test_every_cell_is_a_logged_priced_request_marked_as_experiment(experiments, log) -> None:
    exp = _create(experiments, ["a", "b"])
    run_virtual(experiments.runner.arun(exp.experiment_id))
    log.flush()
    rows = log.query("SELECT * FROM requests ORDER BY model")
    assert len(rows) == 8
    assert set(rows.source) == {"experiment"} and set(rows.experiment_id) == {exp.experiment_id}
    assert rows.cost_usd.notna().all() and (rows.cost_usd > 0).all()
    assert set(rows.routing_reason) == {"experiment variant v1", "experiment variant v2"}
    cells = experiments.store.cells(exp.experiment_id)
    assert {c.request_id for c in cells.values()} == set(rows.request_id)
    # the variant's own template was rendered and sent
    assert rows.prompt.iloc[0].startswith("Premise: Premise number")


def test_cancel_then_resume_skips_done_cells(experiments, sim) -> None:
    exp = _create(experiments, ["a", "b"], concurrency=1)
    token = CancelToken()
    first = run_virtual(experiments.runner.arun(exp.experiment_id, cancel=token,
                                                on_progress=lambda p: p.run_done >= 2 and token.cancel()))
    # the input in flight when Cancel was pressed finishes and is kept; no new one starts
    assert first.state == "cancelled" and 2 <= first.run_done < 8 and first.run_done % 2 == 0
    assert "resume" in first.message
    assert len(experiments.store.cells(exp.experiment_id)) == first.run_done
    second = run_virtual(experiments.runner.arun(exp.experiment_id))
    assert second.state == "finished" and second.run_total == 8 - first.run_done and second.done == 8
    assert all(c.tries == 1 for c in experiments.store.cells(exp.experiment_id).values())


def test_failed_cells_are_kept_and_retried_only_when_asked(experiments, sim) -> None:
    exp = _create(experiments, ["a", "b"])
    real_complete = sim.complete
    broken = {"on": True}

    async def flaky(model, request):  # noqa: ANN001, ANN202
        if model == "b" and broken["on"]:
            raise ProviderUnavailable("simulated outage", provider="sim", model=model, http_status=503)
        return await real_complete(model, request)

    sim.complete = flaky  # type: ignore[method-assign]
    first = run_virtual(experiments.runner.arun(exp.experiment_id))
    assert first.done == 4 and first.failed == 4 and "can be retried" in first.message
    failed = [c for c in experiments.store.cells(exp.experiment_id).values() if not c.ok]
    assert {c.variant_id for c in failed} == {"v2"} and all("503" in (c.error or "") or c.error for c in failed)
    broken["on"] = False
    again = run_virtual(experiments.runner.arun(exp.experiment_id))
    assert again.run_total == 0 and again.failed == 4        # resume alone does not redo failures
    retried = run_virtual(experiments.runner.arun(exp.experiment_id, retry_failed=True))
    assert retried.run_total == 4 and retried.failed == 0 and retried.done == 8
    tries = {c.variant_id: c.tries for c in experiments.store.cells(exp.experiment_id).values()}
    assert tries == {"v1": 1, "v2": 2}


def test_the_run_stops_at_the_cost_cap_and_never_crosses_it(experiments) -> None:
    exp = _create(experiments, ["a", "b"], concurrency=1)
    estimate = experiments.runner.estimate(exp.experiment_id)
    assert estimate.cells == 8 and estimate.expected_usd > 0 and estimate.max_usd >= estimate.expected_usd
    cap = estimate.expected_usd / 3          # room for about one input of four
    progress = run_virtual(experiments.runner.arun(exp.experiment_id, cost_cap=cap))
    assert progress.state == "capped" and "cost cap" in progress.message
    assert 0 < progress.run_done < 8
    assert experiments.store.spent(exp.experiment_id) <= cap
    # raising the cap resumes where it stopped
    rest = run_virtual(experiments.runner.arun(exp.experiment_id, cost_cap=estimate.max_usd * 2))
    assert rest.state == "finished" and rest.done == 8


def test_the_estimate_prices_each_pending_cell_at_its_max_tokens_for_the_worst_case(experiments) -> None:
    exp = _create(experiments, ["a"] + ["b"], csv="prompt\nhi\n")
    est = experiments.runner.estimate(exp.experiment_id)
    # 2 cells; worst case = input tokens + 200 max output tokens at $2/Mtok each.
    assert est.cells == 2
    assert est.max_usd >= Decimal(2) * 200 * 2 / 1_000_000
    assert "2 calls" in est.sentence() and est.unpriced == ()
    run_virtual(experiments.runner.arun(exp.experiment_id))
    assert experiments.runner.estimate(exp.experiment_id).cells == 0


def _story_history(log, model: str, n: int = 30, tokens: int = 900) -> None:  # noqa: ANN001
    """The log's demo traffic: long stories from the same model (another task than the experiment's)."""
    from datetime import datetime, timezone
    rows = [[f"story-{model}-{i}", datetime(2026, 1, 1, tzinfo=timezone.utc), "demo", "pro", "story", "p", "ok", "sim",
             model, 2000, tokens] for i in range(n)]
    log.write(lambda con: con.executemany(
        "INSERT INTO requests (request_id, ts, source, tier, task, policy, status, provider, model, input_tokens, "
        "output_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows))


def test_the_estimate_uses_the_models_history_on_this_task_not_its_long_stories(experiments, log) -> None:
    # The 2.5x: the model's average over all tasks (long demo stories) priced a short idea.
    for m in "ab":
        _story_history(log, m)
    first = _create(experiments, ["a", "b"], csv="prompt,genre\nPremise number 0,Mystery\n")
    assert "a rough guess" in experiments.runner.estimate(first.experiment_id).sentence()
    run_virtual(experiments.runner.arun(first.experiment_id))
    log.flush()
    second = _create(experiments, ["a", "b"])
    est = experiments.runner.estimate(second.experiment_id)
    assert "(from the log's history of the model on this task)" in est.sentence()
    final = run_virtual(experiments.runner.arun(second.experiment_id))
    spent = experiments.store.spent(second.experiment_id)
    assert final.run_estimate_usd == est.expected_usd and final.run_spent_usd == spent
    # within a third (the simulator draws each answer's length, ±20%); the story-based figure was 5x over
    assert abs(est.expected_usd / spent - 1) < Decimal("0.35"), (est.expected_usd, spent)
    assert final.message.endswith(f"against an estimate of {money(est.expected_usd)}.")


def test_after_a_partial_run_the_rest_is_estimated_from_this_experiments_own_answers(experiments, log) -> None:
    for m in "ab":
        _story_history(log, m)
    exp = _create(experiments, ["a", "b"], concurrency=1)
    token = CancelToken()
    run_virtual(experiments.runner.arun(exp.experiment_id, cancel=token,
                                        on_progress=lambda p: p.run_done >= 2 and token.cancel()))
    est = experiments.runner.estimate(exp.experiment_id)
    assert "(from this experiment's answers)" in est.sentence() and est.basis == (("sim:a", "own"), ("sim:b", "own"))
    before = experiments.store.spent(exp.experiment_id)
    rest = run_virtual(experiments.runner.arun(exp.experiment_id))
    actual = experiments.store.spent(exp.experiment_id) - before
    assert rest.run_spent_usd == actual
    assert abs(est.expected_usd / actual - 1) < Decimal("0.35"), (est.expected_usd, actual)   # two answers' sample
