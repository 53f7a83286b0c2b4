"""What a sandbox run keeps of each request and attempt: numeric columns, not objects.

A run of a million requests cannot afford a result object per request. Each
request writes one row of preallocated NumPy columns (codes for names: the
tier, the provider:model that answered, the status); each attempt appends to
plain lists of numbers. Only at the end are they turned into the two
DataFrames the summaries read (``taelio_core.sandbox.results``), with the
names put back by indexing a small array of strings with the code column.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["ATTEMPT_COLUMNS", "REQUEST_COLUMNS", "STATUSES", "AttemptColumns", "RequestColumns"]

REQUEST_COLUMNS = ["i", "arrival_s", "tier", "task", "status", "provider", "model", "latency_ms", "ttft_ms",
                   "cost_usd", "unpriced", "n_attempts", "fallback_depth", "n_skipped", "input_tokens",
                   "output_tokens", "routing_reason"]
ATTEMPT_COLUMNS = ["i", "t_s", "tier", "provider", "model", "status", "error_type", "latency_ms", "cost_usd"]

# Request and attempt statuses, by code. Attempt statuses are these plus "error" (any failure before text).
STATUSES = ("ok", "failed", "truncated", "rejected", "error", "cancelled")


class _Names:
    """Strings by small integer code, added as they are first seen."""

    __slots__ = ("codes", "names")

    def __init__(self, names: Sequence[str | None] = ()) -> None:
        self.names: list[str | None] = []
        self.codes: dict[str | None, int] = {}
        for name in names:
            self.code(name)

    def code(self, name: str | None) -> int:
        code = self.codes.get(name)
        if code is None:
            code = self.codes[name] = len(self.names)
            self.names.append(name)
        return code

    def column(self, codes: np.ndarray) -> np.ndarray:
        return np.array(self.names, dtype=object)[codes]


class RequestColumns:
    """One row per request, written in any order by request index."""

    def __init__(self, n: int, refs: Sequence[str]) -> None:
        self.n = n
        self.refs = list(refs)     # entry code -> "provider:model"; code len(refs) = none
        self.status = np.full(n, STATUSES.index("rejected"), dtype=np.int8)
        self.entry = np.full(n, len(self.refs), dtype=np.int32)
        self.latency_ms = np.full(n, math.nan)
        self.ttft_ms = np.full(n, math.nan)
        self.cost_usd = np.zeros(n)
        self.unpriced = np.zeros(n, dtype=bool)
        self.n_attempts = np.zeros(n, dtype=np.int16)
        self.fallback_depth = np.zeros(n, dtype=np.int16)
        self.n_skipped = np.zeros(n, dtype=np.int16)
        self.input_tokens = np.zeros(n, dtype=np.int64)
        self.output_tokens = np.zeros(n, dtype=np.int64)
        self.reason = np.zeros(n, dtype=np.int32)
        self.reasons = _Names([None])
        self.written = np.zeros(n, dtype=bool)

    def write(self, i: int, status: int, entry: int, latency_ms: float, ttft_ms: float, cost_usd: float,
              unpriced: bool, n_attempts: int, fallback_depth: int, n_skipped: int, input_tokens: int,
              output_tokens: int, reason: str | None = None) -> None:
        self.status[i] = status
        self.entry[i] = len(self.refs) if entry < 0 else entry
        self.latency_ms[i] = latency_ms
        self.ttft_ms[i] = ttft_ms
        self.cost_usd[i] = cost_usd
        self.unpriced[i] = unpriced
        self.n_attempts[i] = n_attempts
        self.fallback_depth[i] = fallback_depth
        self.n_skipped[i] = n_skipped
        self.input_tokens[i] = input_tokens
        self.output_tokens[i] = output_tokens
        if reason is not None:
            self.reason[i] = self.reasons.code(reason)
        self.written[i] = True

    def frame(self, arrival_s: np.ndarray, tier_idx: np.ndarray, task_idx: np.ndarray, tiers: Sequence[str],
              tasks: Sequence[str]) -> pd.DataFrame:
        """The requests written so far (all of them after a full run), as ``REQUEST_COLUMNS``."""
        rows = np.flatnonzero(self.written)
        providers = np.array([r.split(":", 1)[0] for r in self.refs] + [None], dtype=object)
        models = np.array([r.split(":", 1)[1] for r in self.refs] + [None], dtype=object)
        entry = self.entry[rows]
        return pd.DataFrame({
            "i": rows, "arrival_s": arrival_s[rows].astype(float),
            "tier": np.array(tiers, dtype=object)[tier_idx[rows]],
            "task": np.array(tasks, dtype=object)[task_idx[rows]],
            "status": np.array(STATUSES, dtype=object)[self.status[rows]],
            "provider": providers[entry], "model": models[entry],
            "latency_ms": self.latency_ms[rows], "ttft_ms": self.ttft_ms[rows], "cost_usd": self.cost_usd[rows],
            "unpriced": self.unpriced[rows], "n_attempts": self.n_attempts[rows].astype(np.int64),
            "fallback_depth": self.fallback_depth[rows].astype(np.int64),
            "n_skipped": self.n_skipped[rows].astype(np.int64), "input_tokens": self.input_tokens[rows],
            "output_tokens": self.output_tokens[rows], "routing_reason": self.reasons.column(self.reason[rows]),
        }, columns=REQUEST_COLUMNS)


class AttemptColumns:
    """One row per attempt, appended in the order attempts end."""

    def __init__(self, refs: Sequence[str]) -> None:
        self.refs = list(refs)
        self.i: list[int] = []
        self.t_s: list[float] = []
        self.entry: list[int] = []
        self.status: list[int] = []
        self.error: list[int] = []
        self.latency_ms: list[float] = []
        self.cost_usd: list[float] = []
        self.errors = _Names([None])

    def __len__(self) -> int:
        return len(self.i)

    def append(self, i: int, t_s: float, entry: int, status: int, error_type: str | None, latency_ms: float,
               cost_usd: float) -> None:
        """``cost_usd`` is NaN when the attempt could not be priced."""
        self.i.append(i)
        self.t_s.append(t_s)
        self.entry.append(entry)
        self.status.append(status)
        self.error.append(0 if error_type is None else self.errors.code(error_type))
        self.latency_ms.append(latency_ms)
        self.cost_usd.append(cost_usd)

    def freeze(self) -> None:
        """Turn the lists into arrays once the run is over: a tenth of the size to send between processes."""
        self.i = np.asarray(self.i, dtype=np.int64)  # type: ignore[assignment]
        self.t_s = np.asarray(self.t_s, dtype=float)  # type: ignore[assignment]
        self.entry = np.asarray(self.entry, dtype=np.int32)  # type: ignore[assignment]
        self.status = np.asarray(self.status, dtype=np.int8)  # type: ignore[assignment]
        self.error = np.asarray(self.error, dtype=np.int16)  # type: ignore[assignment]
        self.latency_ms = np.asarray(self.latency_ms, dtype=float)  # type: ignore[assignment]
        self.cost_usd = np.asarray(self.cost_usd, dtype=float)  # type: ignore[assignment]

    def frame(self, tier_idx: np.ndarray, tiers: Sequence[str]) -> pd.DataFrame:
        i = np.array(self.i, dtype=np.int64)
        entry = np.array(self.entry, dtype=np.int64)
        providers = np.array([r.split(":", 1)[0] for r in self.refs], dtype=object)
        models = np.array([r.split(":", 1)[1] for r in self.refs], dtype=object)
        return pd.DataFrame({
            "i": i, "t_s": np.array(self.t_s, dtype=float),
            "tier": np.array(tiers, dtype=object)[tier_idx[i]] if len(i) else np.array([], dtype=object),
            "provider": providers[entry] if len(i) else np.array([], dtype=object),
            "model": models[entry] if len(i) else np.array([], dtype=object),
            "status": np.array(STATUSES, dtype=object)[np.array(self.status, dtype=np.int64)],
            "error_type": self.errors.column(np.array(self.error, dtype=np.int64)),
            "latency_ms": np.array(self.latency_ms, dtype=float), "cost_usd": np.array(self.cost_usd, dtype=float),
        }, columns=ATTEMPT_COLUMNS)
