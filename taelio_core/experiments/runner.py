"""Runs an experiment's cells through the real router, fast, resumably, within a cost cap.

* All variants of one input run at once (``asyncio.gather``), so an input
  takes as long as its slowest variant, not the sum. Across the dataset, at
  most ``concurrency`` inputs are in flight.
* Each variant pins one provider:model, so it goes through
  ``Router.arun`` with a one-entry chain: the same attempt, pricing, guard
  and logging path as live traffic, logged with ``source='experiment'``.
* A run only does what is missing: resuming skips finished cells, and
  ``retry_failed`` redoes the failed ones.
* Before an input starts, its expected cost is reserved against the cap; an
  input that would cross the cap is not started, and the run stops there.
* ``cancel`` stops new inputs from starting; calls already in flight finish
  and are stored, so nothing paid for is lost.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from taelio_core.errors import TaelioError
from taelio_core.experiments.model import Cell, Experiment, InputRow, Variant
from taelio_core.experiments.store import ExperimentStore
from taelio_core.router import Router
from taelio_core.runtime import background_loop
from taelio_core.trace import Inputs

__all__ = ["CancelToken", "CostEstimate", "ExperimentRunner", "Progress", "RunHandle"]

CHARS_PER_TOKEN = 4          # rough, for estimates only; real counts come from the provider
DEFAULT_OUTPUT_TOKENS = 400  # expected output when the log has never seen the model


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

    def sentence(self) -> str:
        if self.cells == 0:
            return "Nothing to run: every cell is done."
        text = (f"{self.cells} calls; expected about ${self.expected_usd:.4f}, at most ${self.max_usd:.4f} "
                "if every answer runs to its token limit")
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

    def _unit_costs(self, experiment: Experiment) -> dict[str, tuple[Decimal, Decimal, int] | None]:
        """Per variant: (input $/token, output $/token, expected output tokens), None when unpriced."""
        now = datetime.now(timezone.utc)
        seen = self.store.log.query(
            "SELECT provider, model, avg(output_tokens) AS tokens FROM requests WHERE status = 'ok' "
            "GROUP BY provider, model")
        typical = {(r.provider, r.model): float(r.tokens) for r in seen.itertuples()}
        out: dict[str, tuple[Decimal, Decimal, int] | None] = {}
        for v in experiment.variants:
            prices = self.router.pricer.unit_prices(v.provider, v.model, now)
            if prices is None:
                out[v.variant_id] = None
                continue
            tokens = typical.get((v.provider, v.model), DEFAULT_OUTPUT_TOKENS)
            mtok = Decimal(1_000_000)
            out[v.variant_id] = (prices[0] / mtok, prices[1] / mtok, int(min(v.settings.max_tokens, tokens)))
        return out

    def _cell_cost(self, experiment: Experiment, row: InputRow, variant: Variant,
                   units: dict[str, tuple[Decimal, Decimal, int] | None]) -> tuple[Decimal, Decimal]:
        unit = units[variant.variant_id]
        if unit is None:
            return Decimal(0), Decimal(0)
        request = variant.render(row.variables, experiment.task)
        tokens_in = (len(request.system) + len(request.user)) // CHARS_PER_TOKEN + 1
        expected = tokens_in * unit[0] + unit[2] * unit[1]
        worst = tokens_in * unit[0] + variant.settings.max_tokens * unit[1]
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
        return CostEstimate(cells=cells, expected_usd=expected, max_usd=worst, unpriced=unpriced)

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
        ledger = {"spent": spent, "reserved": Decimal(0), "run_done": 0}
        walls: dict[int, float] = {}
        stop: dict[str, str] = {}

        def progress(state: str = "running", message: str = "") -> Progress:
            elapsed = clock.monotonic() - t0
            done = ledger["run_done"]
            eta = elapsed / done * (run_total - done) if done and state == "running" else None
            return Progress(total=total, done=status["done"], failed=status["failed"], run_total=run_total,
                            run_done=done, elapsed_s=elapsed, eta_s=eta, spent_usd=ledger["spent"], state=state,
                            message=message, input_wall_ms=dict(walls))

        semaphore = asyncio.Semaphore(limit)

        async def one(row: InputRow, variants: list[Variant]) -> None:
            async with semaphore:
                if cancel.cancelled or stop:
                    return
                expected = sum((self._cell_cost(experiment, row, v, units)[0] for v in variants), Decimal(0))
                if cap is not None and ledger["spent"] + ledger["reserved"] + expected > cap:
                    stop["capped"] = (f"Stopped at the cost cap: ${ledger['spent']:.4f} spent of ${cap:.4f}; "
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

