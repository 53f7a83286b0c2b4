"""Saves sandbox runs to the call log's database, in tables of their own.

A run is stored under its run id with source ``sandbox``: the policies (as
TOML, so a winner can be exported again later), the traffic and scenario,
every summary number per arm, seed, tier and provider, the chart series and
the sample traces. None of it goes into ``requests``/``attempts``, so live
analytics never see simulated traffic.
"""
from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from taelio_core.calllog.base import CallLog, insert_frame
from taelio_core.sandbox.simulation import SimulationReport

__all__ = ["list_runs", "load_summaries", "save_report"]

_TIER_METRICS = ("requests", "served", "availability", "fallback_rate", "cost_usd", "cost_per_1k", "p50_ms",
                 "p95_ms", "p99_ms", "budget_burn_pct", "projected_month_pct")
_PROVIDER_METRICS = ("attempts", "served", "share_of_answers", "success_rate", "cost_usd", "p50_ms", "p95_ms",
                     "p99_ms")


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def save_report(log: CallLog, report: SimulationReport) -> str:
    """Write the run in one transaction; returns its run id."""
    summaries: list[tuple] = []
    series: list[pd.DataFrame] = []
    traces: list[tuple] = []
    arms = [("A", report.a_runs)] + ([("B", report.b_runs)] if report.policy_b is not None else [])
    for arm, runs in arms:
        for k, run in enumerate(runs):
            for row in report.tiers(arm, k).to_dict(orient="records"):
                summaries += [(report.run_id, arm, run.seed, "tier", row["tier"], m, _number(row.get(m)))
                              for m in _TIER_METRICS]
            for row in report.providers(arm, k).to_dict(orient="records"):
                key = f"{row['provider']}:{row['model']}"
                metrics = _PROVIDER_METRICS + tuple(c for c in row if c.startswith("err_"))
                summaries += [(report.run_id, arm, run.seed, "provider", key, m, _number(row.get(m)))
                              for m in metrics]
            frame = report.series(arm, k)
            series.append(frame.assign(run_id=report.run_id, arm=arm, seed=run.seed))
            traces += [(report.run_id, arm, run.seed, int(t["i"]), json.dumps(t, default=str)) for t in run.traces]
    series_df = pd.concat(series, ignore_index=True)[
        ["run_id", "arm", "seed", "bucket_s", "provider", "served", "availability", "fallback_rate", "p95_ms",
         "requests"]]
    summary_df = pd.DataFrame(summaries, columns=["run_id", "arm", "seed", "scope", "key", "metric", "value"])
    trace_df = pd.DataFrame(traces, columns=["run_id", "arm", "seed", "i", "trace"])
    run_row = (report.run_id, report.created_at, "sandbox", report.policy_a.name,
               report.policy_b.name if report.policy_b else None, report.policy_a.text,
               report.policy_b.text if report.policy_b else None, report.traffic.description,
               json.dumps(report.traffic.meta, default=str), report.scenario.name if report.scenario else None,
               len(report.seeds), len(report.traffic), report.wall_s, report.rate,
               json.dumps(report.models.rows(), default=str))

    def write(con: Any) -> None:
        con.execute("INSERT INTO sandbox_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_row)
        for table, frame in (("sandbox_summaries", summary_df), ("sandbox_series", series_df),
                             ("sandbox_traces", trace_df)):
            insert_frame(con, table, frame)      # one batch each, on DuckDB or PostgreSQL

    log.write(write)
    return report.run_id


def list_runs(log: CallLog, limit: int = 50) -> pd.DataFrame:
    return log.query("SELECT run_id, created_at, policy_a, policy_b, traffic, scenario, seeds, requests, "
                     "requests_per_s FROM sandbox_runs ORDER BY created_at DESC LIMIT ?", [limit])


def load_summaries(log: CallLog, run_id: str) -> pd.DataFrame:
    return log.query("SELECT * FROM sandbox_summaries WHERE run_id = ? ORDER BY arm, seed, scope, key, metric",
                     [run_id])
