"""A/B experiments across prompts and providers: run, vote, judge, and read a verdict.

``Experiments(engine)`` is what the Compare page and ``taelio experiment``
share: the store (DuckDB tables beside the call log), the runner (all
variants of an input at once, through the real router), blind votes, the LLM
judge, and the results with their statistics.
"""
from __future__ import annotations

from dataclasses import dataclass

from taelio_core.errors import TaelioError
from taelio_core.experiments.dataset import parse_csv, single_prompt
from taelio_core.experiments.judge import Judge
from taelio_core.experiments.model import (
    Cell,
    Experiment,
    ExperimentSpec,
    InputRow,
    Variant,
    VariantSpec,
    cross_variants,
)
from taelio_core.calllog.base import CallLog
from taelio_core.experiments.results import ExperimentResults, results
from taelio_core.experiments.runner import CancelToken, CostEstimate, ExperimentRunner, Progress, RunHandle
from taelio_core.experiments.store import CHOICES, ExperimentStore
from taelio_core.experiments.voting import Matchup, next_matchup
from taelio_core.routing.router import Router

__all__ = [
    "CHOICES", "CancelToken", "Cell", "CostEstimate", "Experiment", "ExperimentResults", "ExperimentRunner",
    "ExperimentSpec", "ExperimentStore", "Experiments", "InputRow", "Judge", "Matchup", "Progress", "RunHandle",
    "Variant", "VariantSpec", "cross_variants", "next_matchup", "parse_csv", "results", "single_prompt",
]


@dataclass(kw_only=True)
class Experiments:
    store: ExperimentStore
    runner: ExperimentRunner
    judge: Judge

    @classmethod
    def open(cls, router: Router, log: CallLog | None) -> Experiments:
        if log is None:
            raise TaelioError("experiments need the call log (open the engine with log=True)")
        store = ExperimentStore(log, router.policy)
        return cls(store=store, runner=ExperimentRunner(router, store), judge=Judge(router, store))

    def results(self, experiment_id: str, **kw: object) -> ExperimentResults:
        return results(self.store, experiment_id, **kw)  # type: ignore[arg-type]
