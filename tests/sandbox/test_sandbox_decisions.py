"""The differential test, Sandbox side: on the fixed fault script the discrete-event Sandbox decides exactly
what the live async router decided (``tests/routing/golden_decisions.jsonl``, which the live router is held
to by ``tests/routing/test_golden_decisions.py``): per request the chosen entry, every attempt with its
status, error class, retry number, wait, latency and cost, every skipped entry with its reason, the status,
the routing reason and the latency."""
from __future__ import annotations

import json

import numpy as np

from taelio_core.sandbox.engine import run_engine
from taelio_core.sandbox.models import models_from_policy
from taelio_core.sandbox.outcomes import ProviderOutcomes
from taelio_core.sandbox.traffic import Traffic
from taelio_core.sandbox.walk import ChainSteps, SandboxCore
from tests.routing.fault_script import (
    INPUTS,
    REQUESTS,
    SEED,
    START,
    decision_record,
    fault_policy,
    jitter,
    outcome,
    read_golden,
    run_live,
)


class _KeptWalks(SandboxCore):
    """The Sandbox's core, keeping every walk so the test can read each request's full result."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.walks: dict[int, ChainSteps] = {}

    def begin(self, i: int, tier: str, task: str, now: float, input_tokens: int, output_tokens: int) -> ChainSteps:
        walk = self.walks[i] = super().begin(i, tier, task, now, input_tokens, output_tokens)
        return walk


def run_sandbox() -> list[dict[str, object]]:
    policy = fault_policy()
    tiers, tasks = tuple(policy.tiers), tuple(policy.tasks)
    traffic = Traffic(start=START, arrival_s=np.array([r.arrival_s for r in REQUESTS]),
                      tier_idx=np.array([tiers.index(r.tier) for r in REQUESTS], dtype=np.int16),
                      task_idx=np.array([tasks.index(r.task) for r in REQUESTS], dtype=np.int16),
                      input_tokens=np.array([r.input_tokens for r in REQUESTS]),
                      output_tokens=np.array([r.output_tokens for r in REQUESTS]), tiers=tiers, tasks=tasks)
    draws: dict[int, int] = {}

    def keyed(i: int) -> float:   # the live run's KeyedJitter: the k-th draw of request i
        k = draws.get(i, 0)
        draws[i] = k + 1
        return jitter(SEED, i, k)

    core = _KeptWalks(policy, START, jitter=keyed, inputs=INPUTS, streamed={r.i for r in REQUESTS if r.stream},
                      text=True)
    run_engine(core, traffic, ProviderOutcomes(models_from_policy(policy), core.refs, seed=SEED, script=outcome),
               sample=set())
    return [decision_record(r, core.walks[r.i].generation_result()) for r in REQUESTS]


def _first_difference(got: list[dict], want: list[dict]) -> str:
    for g, w in zip(got, want):
        if g != w:
            return (f"request {w['i']}:\n  live:    {json.dumps(w, sort_keys=True)}\n"
                    f"  sandbox: {json.dumps(g, sort_keys=True)}")
    return f"{len(got)} records against {len(want)}"


def test_the_sandbox_decides_on_the_fault_script_exactly_as_the_golden_file_says() -> None:
    golden = read_golden()
    got = json.loads(json.dumps(run_sandbox()))
    assert got == golden, "the Sandbox decided differently:\n" + _first_difference(got, golden)


def test_the_sandbox_and_the_live_router_decide_alike_in_the_same_run() -> None:
    live = json.loads(json.dumps(run_live()))
    got = json.loads(json.dumps(run_sandbox()))
    assert got == live, "the Sandbox decided differently:\n" + _first_difference(got, live)
