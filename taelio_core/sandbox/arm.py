"""One policy over one traffic sample with one seed, on the engine that can run it.

The discrete-event engine (``engine`` driving ``walk.SandboxCore``) runs every
policy it supports; a policy with hedging or live traffic splits, or a test
that adds its own guards, runs on the asyncio engine over the live router
(``replay.run_policy``). Both return the same ``ArmRun``, and ``ArmRun.meta``
says which engine made it (``"events"`` or ``"asyncio"``) and why.
"""
from __future__ import annotations

from taelio_core.config.policy import RoutingPolicy
from taelio_core.sandbox.engine import EngineRun, arm_run, run_engine
from taelio_core.sandbox.models import ModelSet
from taelio_core.sandbox.outcomes import ProviderOutcomes
from taelio_core.sandbox.replay import ArmRun, GuardFactory, Progress, SimulationCancelled, run_policy
from taelio_core.sandbox.traffic import Traffic
from taelio_core.sandbox.walk import SandboxCore, supported

__all__ = ["as_arm", "run_arm", "run_events"]


def run_events(policy: RoutingPolicy, traffic: Traffic, models: ModelSet, *, seed: int = 0,
               progress: Progress | None = None) -> ArmRun:
    """The discrete-event engine over the decision core. ``progress`` may cancel (``SimulationCancelled``)."""
    return arm_run(policy.name, seed, traffic, _events(policy, traffic, models, seed, progress))


def _events(policy: RoutingPolicy, traffic: Traffic, models: ModelSet, seed: int,
            progress: Progress | None) -> EngineRun:
    core = SandboxCore(policy, traffic.start, seed=seed)
    run = run_engine(core, traffic, ProviderOutcomes(models, core.refs, seed=seed), progress=progress)
    if run.finished < len(traffic):
        raise SimulationCancelled(run.finished, len(traffic))
    return run


def run_arm(policy: RoutingPolicy, traffic: Traffic, models: ModelSet, *, seed: int = 0,
            progress: Progress | None = None, guards: GuardFactory | None = None,
            compact: bool = False) -> ArmRun | EngineRun:
    """``compact``: a discrete-event run comes back as its columns (``EngineRun``), to be sent from a worker
    process at a fraction of a DataFrame's size; ``as_arm`` makes the ``ArmRun`` where it is read."""
    why = "a test's own guards" if guards is not None else supported(policy)
    if why is None:
        run = _events(policy, traffic, models, seed, progress)
        return run if compact else arm_run(policy.name, seed, traffic, run)
    run = run_policy(policy, traffic, models, seed=seed, progress=progress, guards=guards)
    run.meta.update({"engine": "asyncio", "why": f"the policy uses {why}" if guards is None else why})
    return run


def as_arm(policy: RoutingPolicy, seed: int, traffic: Traffic, run: ArmRun | EngineRun) -> ArmRun:
    return run if isinstance(run, ArmRun) else arm_run(policy.name, seed, traffic, run)
