"""Runs an experiment's cells through the real router, fast, resumably, within a cost cap.

* All variants of one input run at once (``asyncio.gather``), so an input
  takes as long as its slowest variant, not the sum. Across the dataset, at
  most ``concurrency`` inputs are in flight.
* Each variant pins one provider:model, so it goes through
  ``Router.arun`` with a one-entry chain: the same attempt, pricing, guard
  and logging path as live traffic, logged with ``source='experiment'``.
* A run only does what is missing: resuming skips finished cells, and
  ``retry_failed`` redoes the failed ones.
* The expected cost comes from the variant's own answers when it has some,
  else from the log's history of the model on the same task, else a rough
  guess; the estimate says which, and a run reports its spend against it.
* Before an input starts, its expected cost is reserved against the cap; an
  input that would cross the cap is not started, and the run stops there.
* ``cancel`` stops new inputs from starting; calls already in flight finish
  and are stored, so nothing paid for is lost.
"""
from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pandas as pd

from taelio_core.errors import TaelioError
from taelio_core.experiments.model import Cell, Experiment, InputRow, Variant
from taelio_core.experiments.store import ExperimentStore
from taelio_core.formatting import money
from taelio_core.guards.budgets import estimate_input_tokens
from taelio_core.routing.inputs import Inputs
from taelio_core.routing.router import Router
from taelio_core.routing.runtime import background_loop

__all__ = ["CancelToken", "CostEstimate", "ExperimentRunner", "Progress", "RunHandle"]

DEFAULT_OUTPUT_TOKENS = 400  # expected output when neither the experiment nor the log has seen the model
GUESS_INPUT_RATIO = 0.75     # input tokens per budget-estimate token with no history (~4 characters a token)


@dataclass(frozen=True, kw_only=True)
class _Unit:
    """What one pending cell of a variant is expected to use, and where that expectation came from."""

    input_price: Decimal         # USD per input token
    output_price: Decimal        # USD per output token
    input_ratio: float           # actual input tokens per ``estimate_input_tokens`` token
    output_tokens: float         # expected output tokens
    basis: str                   # own | history | guess


BASIS_TEXT = {"own": "this experiment's answers", "history": "the log's history of the model on this task",
              "guess": "a rough guess (no history: about 4 characters a token, 400 output tokens)"}


class CancelToken:
    """Set from any thread (a Cancel button, Ctrl-C); the run checks it before each input."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True, kw_only=True)
class CostEstimate:
    cells: int
    expected_usd: Decimal
    max_usd: Decimal             # if every answer used its max_tokens
    unpriced: tuple[str, ...]    # provider:model refs the catalogue cannot price
    basis: tuple[tuple[str, str], ...] = ()   # (variant label, own | history | guess) for each priced variant

    def basis_sentence(self) -> str:
        """Which history the expected figure stands on, variant by variant."""
        groups: dict[str, list[str]] = {}
        for label, kind in self.basis:
            groups.setdefault(kind, []).append(label)
        parts = [f"{BASIS_TEXT[k]} for {', '.join(groups[k])}" for k in ("own", "history", "guess") if k in groups]
        if len(groups) == 1:
            parts = [BASIS_TEXT[next(iter(groups))]]
        return "; ".join(parts)

    def sentence(self) -> str:
        if self.cells == 0:
            return "Nothing to run: every cell is done."
        text = (f"{self.cells} calls; expected about {money(self.expected_usd)}"
                + (f" (from {self.basis_sentence()})" if self.basis else "")
                + f", at most {money(self.max_usd)} if every answer runs to its token limit")
        if self.unpriced:
            text += f"; {', '.join(self.unpriced)} cannot be priced and are not included"
        return text + "."


@dataclass(frozen=True, kw_only=True)
class Progress:
    total: int                   # cells in the experiment
    done: int                    # cells finished ok
    failed: int
    run_total: int               # cells this run set out to do
    run_done: int
    elapsed_s: float
    eta_s: float | None
    spent_usd: Decimal
    state: str                   # running | finished | cancelled | capped
    message: str = ""
    input_wall_ms: dict[int, float] = field(default_factory=dict, repr=False)
    run_estimate_usd: Decimal | None = None   # what this run was expected to cost when it started
    run_spent_usd: Decimal = Decimal(0)       # what this run has cost so far

    def estimate_against_actual(self) -> str:
        """After a run: "Spent $0.045 on this run against an estimate of $0.048." (empty before anything ran)."""
        if self.run_estimate_usd is None or self.run_done == 0:
            return ""
        return (f"Spent {money(self.run_spent_usd)} on this run against an estimate of "
                f"{money(self.run_estimate_usd)}.")

    @property
    def fraction(self) -> float:
        return 1.0 if self.run_total == 0 else self.run_done / self.run_total


class ExperimentRunner:
    def __init__(self, router: Router, store: ExperimentStore) -> None:
        self.router = router
        self.store = store

    # ---- planning --------------------------------------------------------------------------
    def pending(self, experiment: Experiment, *, retry_failed: bool = False) -> list[tuple[InputRow, list[Variant]]]:
        cells = self.store.cells(experiment.experiment_id)
        work = []
        for row in experiment.inputs:
            todo = []
            for v in experiment.variants:
                cell = cells.get((row.input_id, v.variant_id))
                if cell is None or (retry_failed and not cell.ok):
                    todo.append(v)
            if todo:
                work.append((row, todo))
        return work

    def _unit_costs(self, experiment: Experiment) -> dict[str, _Unit | None]:
        """Per variant, what a pending cell is expected to use, None when unpriced.

        Best basis first: the variant's own finished cells in this experiment;
        else the log's requests for the same provider:model on the same task
        (the demo's long stories once made an idea estimate 2.5x the spend);
        else a rough guess.
        """
        now = datetime.now(timezone.utc)
        cells = self.store.cells(experiment.experiment_id)
        rows = {r.input_id: r for r in experiment.inputs}
        seen = self.store.log.query(
            "SELECT provider, model, avg(output_tokens) AS tokens, "
            "sum(input_tokens) FILTER (WHERE prompt IS NOT NULL) AS tin, "
            "sum(floor(length(prompt) / 3) + 16) AS guess FROM requests "   # DuckDB and PostgreSQL alike
            "WHERE status IN ('ok', 'truncated') AND task = ? AND provider IS NOT NULL GROUP BY provider, model",
            [experiment.task])
        history = {(r.provider, r.model): r for r in seen.itertuples()}
        out: dict[str, _Unit | None] = {}
        for v in experiment.variants:
            prices = self.router.pricer.unit_prices(v.provider, v.model, now)
            if prices is None:
                out[v.variant_id] = None
                continue
            done = [c for (input_id, vid), c in cells.items()
                    if vid == v.variant_id and c.status in ("ok", "truncated") and input_id in rows]
            h = history.get((v.provider, v.model))
            if done:
                guessed = sum(estimate_input_tokens(v.render(rows[c.input_id].variables, experiment.task))
                              for c in done)
                ratio = sum(c.input_tokens for c in done) / max(1, guessed)
                tokens, basis = sum(c.output_tokens for c in done) / len(done), "own"
            elif h is not None and not pd.isna(h.tokens):
                ratio = float(h.tin) / float(h.guess) if h.guess and not pd.isna(h.guess) else GUESS_INPUT_RATIO
                tokens, basis = float(h.tokens), "history"
            else:
                ratio, tokens, basis = GUESS_INPUT_RATIO, float(DEFAULT_OUTPUT_TOKENS), "guess"
            mtok = Decimal(1_000_000)
            out[v.variant_id] = _Unit(input_price=prices[0] / mtok, output_price=prices[1] / mtok, input_ratio=ratio,
                                      output_tokens=min(float(v.settings.max_tokens), tokens), basis=basis)
        return out

    def _cell_cost(self, experiment: Experiment, row: InputRow, variant: Variant,
                   units: dict[str, _Unit | None]) -> tuple[Decimal, Decimal]:
        unit = units[variant.variant_id]
        if unit is None:
            return Decimal(0), Decimal(0)
        budget_tokens = estimate_input_tokens(variant.render(row.variables, experiment.task))
        expected_in = Decimal(str(round(budget_tokens * unit.input_ratio, 1)))
        expected = expected_in * unit.input_price + Decimal(str(round(unit.output_tokens, 1))) * unit.output_price
        # The worst case stays the budget guard's deliberately high guess at the token limit.
        worst = budget_tokens * unit.input_price + variant.settings.max_tokens * unit.output_price
        return expected, worst

    def estimate(self, experiment_id: str, *, retry_failed: bool = False) -> CostEstimate:
        experiment = self.store.load(experiment_id)
        units = self._unit_costs(experiment)
        expected = worst = Decimal(0)
        cells = 0
        for row, variants in self.pending(experiment, retry_failed=retry_failed):
            for v in variants:
                e, w = self._cell_cost(experiment, row, v, units)
                expected, worst, cells = expected + e, worst + w, cells + 1
        unpriced = tuple(v.ref for v in experiment.variants if units[v.variant_id] is None)
        basis = tuple((v.label, unit.basis) for v in experiment.variants
                      if (unit := units[v.variant_id]) is not None)
        return CostEstimate(cells=cells, expected_usd=expected, max_usd=worst, unpriced=unpriced, basis=basis)

    # ---- running ---------------------------------------------------------------------------
    async def arun(self, experiment_id: str, *, concurrency: int | None = None, cost_cap: Decimal | None = None,
                   retry_failed: bool = False, cancel: CancelToken | None = None,
                   on_progress: Callable[[Progress], None] | None = None) -> Progress:
        experiment = self.store.load(experiment_id)
        cancel = cancel or CancelToken()
        cap = cost_cap if cost_cap is not None else experiment.cost_cap_usd
        limit = max(1, concurrency or experiment.concurrency)
        work = self.pending(experiment, retry_failed=retry_failed)
        units = self._unit_costs(experiment)
        existing = self.store.cells(experiment_id)
        clock = self.router.clock
        t0 = clock.monotonic()
        total = len(experiment.inputs) * len(experiment.variants)
        run_total = sum(len(vs) for _, vs in work)
        status = {"done": sum(c.ok for c in existing.values()),
                  "failed": sum(not c.ok for c in existing.values())}
        spent = await asyncio.to_thread(self.store.spent, experiment_id)
        run_estimate = sum((self._cell_cost(experiment, row, v, units)[0] for row, vs in work for v in vs), Decimal(0))
        ledger = {"spent": spent, "reserved": Decimal(0), "run_done": 0}
        walls: dict[int, float] = {}
        stop: dict[str, str] = {}

        def progress(state: str = "running", message: str = "") -> Progress:
            elapsed = clock.monotonic() - t0
            done = ledger["run_done"]
            eta = elapsed / done * (run_total - done) if done and state == "running" else None
            return Progress(total=total, done=status["done"], failed=status["failed"], run_total=run_total,
                            run_done=done, elapsed_s=elapsed, eta_s=eta, spent_usd=ledger["spent"], state=state,
                            message=message, input_wall_ms=dict(walls), run_estimate_usd=run_estimate,
                            run_spent_usd=ledger["spent"] - spent)

        semaphore = asyncio.Semaphore(limit)

        async def one(row: InputRow, variants: list[Variant]) -> None:
            async with semaphore:
                if cancel.cancelled or stop:
                    return
                expected = sum((self._cell_cost(experiment, row, v, units)[0] for v in variants), Decimal(0))
                if cap is not None and ledger["spent"] + ledger["reserved"] + expected > cap:
                    stop["capped"] = (f"Stopped at the cost cap: {money(ledger['spent'])} spent of {money(cap)}; "
                                      "the next input would cross it. Raise the cap to go on.")
                    return
                ledger["reserved"] += expected
                started = clock.monotonic()
                cells = await asyncio.gather(*(self._cell(experiment, row, v, existing) for v in variants))
                walls[row.input_id] = (clock.monotonic() - started) * 1000.0
            # Stored outside the semaphore, so the next input starts while this one is written.
            try:
                await asyncio.to_thread(self.store.save_cells, experiment_id, list(cells))
            finally:
                ledger["reserved"] -= expected
            for cell in cells:
                previous = existing.get((row.input_id, cell.variant_id))
                if previous is not None:
                    status["done" if previous.ok else "failed"] -= 1
                status["done" if cell.ok else "failed"] += 1
                ledger["spent"] += cell.cost_usd or Decimal(0)
            ledger["run_done"] += len(cells)
            if on_progress is not None:
                on_progress(progress())

        if on_progress is not None:
            on_progress(progress())
        await asyncio.gather(*(one(row, variants) for row, variants in work))
        if "capped" in stop:
            final = progress("capped", stop["capped"])
        elif cancel.cancelled and ledger["run_done"] < run_total:
            final = progress("cancelled", f"Cancelled after {ledger['run_done']} of {run_total} calls; "
                                          "run again to resume where it stopped.")
        else:
            failed = status["failed"]
            final = progress("finished", "All cells done." if not failed else
                             f"Done; {failed} cell{'s' if failed != 1 else ''} failed and can be retried.")
        against = final.estimate_against_actual()
        if against:
            final = dataclasses.replace(final, message=f"{final.message} {against}")
        if on_progress is not None:
            on_progress(final)
        return final

    async def _cell(self, experiment: Experiment, row: InputRow, variant: Variant,
                    existing: dict[tuple[int, str], Cell]) -> Cell:
        previous = existing.get((row.input_id, variant.variant_id))
        tries = (previous.tries + 1) if previous is not None else 1
        vars_ = row.variables
        try:
            request = variant.render(vars_, experiment.task)
            result = await self.router.arun(
                request, (variant.entry,), tier=experiment.tier, task=experiment.task,
                inputs=Inputs(prompt=row.prompt, genre=vars_.get("genre", ""), tone=vars_.get("tone", "")),
                source="experiment", experiment_id=experiment.experiment_id,
                routing_reason=f"experiment variant {variant.variant_id}")
        except (TaelioError, KeyError, ValueError) as e:
            return Cell(input_id=row.input_id, variant_id=variant.variant_id, status="failed", output="",
                        error=str(e), latency_ms=None, input_tokens=0, output_tokens=0, cost_usd=None,
                        request_id=None, tries=tries)
        usage = result.usage
        return Cell(input_id=row.input_id, variant_id=variant.variant_id,
                    status="ok" if result.ok else ("truncated" if result.status == "truncated" else "failed"),
                    output=result.text, error=result.error, latency_ms=result.latency_ms,
                    input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cost_usd=result.cost_usd,
                    request_id=result.request_id, tries=tries)

    # ---- from threads ------------------------------------------------------------------------
    def start(self, experiment_id: str, **kw: object) -> RunHandle:
        """Start a run on the shared background loop; returns at once with a handle to watch or cancel."""
        return RunHandle.launch(self.arun, experiment_id, **kw)

    def run(self, experiment_id: str, **kw: object) -> Progress:
        return background_loop().run(self.arun(experiment_id, **kw))  # type: ignore[arg-type]


class RunHandle:
    """A run in the background: its latest ``progress``, ``cancel()``, and ``result()`` when done."""

    def __init__(self) -> None:
        self.token = CancelToken()
        self.progress: Progress | None = None
        self._future = None
        self._lock = threading.Lock()

    @classmethod
    def launch(cls, arun: Callable[..., Coroutine[Any, Any, Progress]], experiment_id: str, **kw: object) -> RunHandle:
        """Run ``arun(experiment_id, cancel=..., on_progress=..., **kw)`` on the background loop."""
        handle = cls()
        coro = arun(experiment_id, cancel=handle.token, on_progress=handle._update, **kw)
        handle._future = asyncio.run_coroutine_threadsafe(coro, background_loop().loop)
        return handle

    def _update(self, progress: Progress) -> None:
        with self._lock:
            self.progress = progress

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def done(self) -> bool:
        return self._future is not None and self._future.done()

    def result(self, timeout: float | None = None) -> Progress:
        assert self._future is not None
        return self._future.result(timeout)

    @property
    def error(self) -> str | None:
        """One sentence when the run itself broke (not a provider failure: those are failed cells)."""
        if not self.done or self._future.cancelled():  # type: ignore[union-attr]
            return None
        exc = self._future.exception()  # type: ignore[union-attr]
        return None if exc is None else (str(exc) if isinstance(exc, TaelioError) else type(exc).__name__)

