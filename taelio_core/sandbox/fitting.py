"""Provider models fitted from the call log, so the sandbox behaves like last week did.

Per provider and model, from the logged attempts in a window: the share of
attempts that failed with each error class, a lognormal latency (median and
spread of the successful attempts' log-latency), the median time to first
token, and the mean output tokens per task. Models with too few attempts to
say anything keep the policy's simulator values, and the fitted table says
how many rows each number rests on.
"""
from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime

from taelio_core.calllog.base import CallLog
from taelio_core.sandbox.models import ERROR_CLASSES, ModelSet
from taelio_core.calllog.sources import REPLAY_SOURCES

__all__ = ["MIN_ATTEMPTS", "fit_models"]

MIN_ATTEMPTS = 20   # fewer attempts than this: keep the prior model
_ERROR_MAP = {"rate_limited": "rate_limited", "unavailable": "unavailable", "timeout": "timeout",
              "model_not_found": "model_not_found", "bad_response": "bad_response"}


def fit_models(log: CallLog, prior: ModelSet, start: datetime, end: datetime, *,
               sources: tuple[str, ...] = REPLAY_SOURCES) -> ModelSet:
    """``prior`` with every provider:model that has enough logged attempts replaced by its fit."""
    marks = ", ".join("?" for _ in sources)
    where = f"ts >= ? AND ts < ? AND source IN ({marks})"
    params = [start, end, *sources]
    stats = log.query(
        f"""SELECT provider, model, count(*) AS n,
                   count(*) FILTER (WHERE status = 'ok') AS ok,
                   exp(avg(ln(latency_ms)) FILTER (WHERE status = 'ok' AND latency_ms > 0)) AS median_ms,
                   stddev_samp(ln(latency_ms)) FILTER (WHERE status = 'ok' AND latency_ms > 0) AS sigma,
                   median(ttft_ms) FILTER (WHERE status = 'ok') AS ttft_ms
            FROM attempts WHERE {where} GROUP BY provider, model""", params)
    errors = log.query(
        f"SELECT provider, model, error_type, count(*) AS n FROM attempts WHERE {where} AND status <> 'ok' "
        "GROUP BY provider, model, error_type", params)
    tokens = log.query(
        f"SELECT provider, model, task, avg(output_tokens) AS out FROM attempts WHERE {where} AND status = 'ok' "
        "GROUP BY provider, model, task", params)
    models = dict(prior.models)
    for row in stats.to_dict(orient="records"):
        n = int(row["n"])
        ref = f"{row['provider']}:{row['model']}"
        if n < MIN_ATTEMPTS:
            continue
        base = models.get(ref) or prior.get(row["provider"], row["model"])
        rates: dict[str, float] = {}
        mine = errors[(errors["provider"] == row["provider"]) & (errors["model"] == row["model"])]
        for err in mine.to_dict(orient="records"):
            error_class = _ERROR_MAP.get(str(err["error_type"]), "unavailable")
            rates[error_class] = rates.get(error_class, 0.0) + int(err["n"]) / n
        per_task = tokens[(tokens["provider"] == row["provider"]) & (tokens["model"] == row["model"])]
        median = _finite(row["median_ms"], base.latency_ms)
        models[ref] = replace(
            base, latency_ms=median, latency_sigma=_finite(row["sigma"], base.latency_sigma),
            ttft_ms=min(median, _finite(row["ttft_ms"], base.ttft_ms)),
            error_rates={k: round(v, 5) for k, v in rates.items() if k in ERROR_CLASSES},
            tokens_per_task={str(t["task"]): float(t["out"]) for t in per_task.to_dict(orient="records")},
            fitted_from=n)
    return replace(prior, models=models, source="log")


def _finite(value: object, default: float) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return default if math.isnan(number) or number <= 0 else number
