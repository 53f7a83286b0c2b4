"""The requests a sandbox run sends: synthetic, or replayed from the call log.

Traffic is a set of columns (arrival second, tier, task, input and output
tokens), held as NumPy arrays so 100,000 requests cost nothing to build or
to pass to several runs. Both policies of a comparison, and every seed, get
the same ``Traffic`` object: only the providers' random streams change.

* ``synthetic_traffic``: Poisson arrivals at a rate that is flat or follows a
  daily curve (quiet at night, busy in the afternoon), a tier x task mix, and
  lognormal prompt and output lengths per task.
* ``replay_traffic``: every logged request between two instants from the
  chosen sources, at its original offset, tier, task and token sizes. Nothing
  is dropped: a request whose tier or task the candidate policy lacks is
  kept and counted as rejected, so counts always equal the log's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from taelio_core.calllog.base import CallLog
from taelio_core.calllog.sources import REPLAY_SOURCES
from taelio_core.errors import InputError

__all__ = ["Traffic", "parse_window", "replay_traffic", "synthetic_traffic"]

DEFAULT_TOKENS = {"idea": (120, 260), "story": (330, 900)}   # (input, output) medians when nothing is known


@dataclass(frozen=True, kw_only=True)
class Traffic:
    """Requests sorted by arrival. ``tiers``/``tasks`` hold the names the index columns point into."""

    start: datetime
    arrival_s: np.ndarray
    tier_idx: np.ndarray
    task_idx: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    tiers: tuple[str, ...]
    tasks: tuple[str, ...]
    description: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self) else 0.0

    def tier_counts(self) -> dict[str, int]:
        counts = np.bincount(self.tier_idx, minlength=len(self.tiers))
        return {t: int(c) for t, c in zip(self.tiers, counts) if c}

    def head(self, n: int) -> Traffic:
        return Traffic(start=self.start, arrival_s=self.arrival_s[:n], tier_idx=self.tier_idx[:n],
                       task_idx=self.task_idx[:n], input_tokens=self.input_tokens[:n],
                       output_tokens=self.output_tokens[:n], tiers=self.tiers, tasks=self.tasks,
                       description=self.description, meta=self.meta)


def _daily_weight(hours: np.ndarray) -> np.ndarray:
    """Relative load by hour of day: a trough at 04:00 UTC, a peak at 16:00, peak/trough = 4."""
    return 1.0 + 0.6 * np.cos((hours - 16.0) / 24.0 * 2.0 * math.pi)


def synthetic_traffic(*, requests: int, tiers: list[str], tasks: list[str], seed: int = 0,
                      duration_s: float | None = None, curve: str = "flat",
                      mix: dict[tuple[str, str], float] | None = None,
                      tokens: dict[str, tuple[float, float]] | None = None, token_sigma: float = 0.5,
                      start: datetime | None = None) -> Traffic:
    """``requests`` arrivals spread over ``duration_s`` (default: one day).

    ``mix`` weights tier x task pairs (default: equal); ``tokens`` gives each
    task's median (input, output) tokens; ``curve`` is ``flat`` or ``daily``.
    """
    if requests <= 0:
        raise InputError("the number of requests must be at least 1", field="requests")
    if curve not in ("flat", "daily"):
        raise InputError(f"unknown traffic curve '{curve}' (flat, daily)", field="curve")
    duration_s = float(duration_s or 86_400.0)
    if duration_s <= 0:
        raise InputError("the traffic duration must be above 0", field="duration")
    rng = np.random.default_rng(seed)
    start = start or datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if curve == "flat":
        arrival = np.sort(rng.uniform(0.0, duration_s, requests))
    else:
        # Arrivals with density proportional to the daily curve, by inverting its cumulative sum.
        grid = np.linspace(0.0, duration_s, 4097)
        hours = (start.hour + start.minute / 60.0 + grid / 3600.0) % 24.0
        cdf = np.concatenate([[0.0], np.cumsum(_daily_weight(hours[1:]))])
        cdf /= cdf[-1]
        arrival = np.interp(np.sort(rng.uniform(0.0, 1.0, requests)), cdf, grid)
    pairs = [(t, k) for t in tiers for k in tasks]
    weights = np.array([(mix or {}).get(p, 0.0 if mix else 1.0) for p in pairs], dtype=float)
    if weights.sum() <= 0:
        raise InputError("the tier x task mix has no positive weight", field="mix")
    choice = rng.choice(len(pairs), size=requests, p=weights / weights.sum())
    tier_idx = (choice // len(tasks)).astype(np.int16)
    task_idx = (choice % len(tasks)).astype(np.int16)
    sizes = tokens or {}
    medians = np.array([sizes.get(k, DEFAULT_TOKENS.get(k, (150, 400))) for k in tasks], dtype=float)
    noise = rng.lognormal(0.0, token_sigma, size=(requests, 2))
    input_tokens = np.maximum(1, medians[task_idx, 0] * noise[:, 0]).astype(np.int64)
    output_tokens = np.maximum(1, medians[task_idx, 1] * noise[:, 1]).astype(np.int64)
    desc = f"{requests:,} synthetic requests over {duration_s / 3600:g} h ({curve})"
    return Traffic(start=start, arrival_s=arrival, tier_idx=tier_idx, task_idx=task_idx,
                   input_tokens=input_tokens, output_tokens=output_tokens, tiers=tuple(tiers), tasks=tuple(tasks),
                   description=desc, meta={"kind": "synthetic", "curve": curve, "duration_s": duration_s})


def parse_window(text: str, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``7d``, ``24h``, ``90m`` (ending now) or ``2026-11-01..2026-11-08`` (UTC dates or ISO instants)."""
    now = now or datetime.now(timezone.utc)
    text = text.strip()
    if ".." in text:
        first, _, last = text.partition("..")
        try:
            start, end = _instant(first), _instant(last, end_of_day=True)
        except ValueError:
            raise InputError(f"'{text}' is not START..END with ISO dates", field="replay") from None
        if end <= start:
            raise InputError(f"the window '{text}' ends before it starts", field="replay")
        return start, end
    units = {"d": 86_400, "h": 3_600, "m": 60}
    if len(text) >= 2 and text[-1] in units and text[:-1].replace(".", "", 1).isdigit() and float(text[:-1]) > 0:
        return now - timedelta(seconds=float(text[:-1]) * units[text[-1]]), now
    raise InputError(f"'{text}' is not a window like 7d, 24h, 90m or 2026-11-01..2026-11-08",
                     field="replay")


def _instant(text: str, *, end_of_day: bool = False) -> datetime:
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if end_of_day and len(text.strip()) == 10:
        value += timedelta(days=1)
    return value


def replay_traffic(log: CallLog, start: datetime, end: datetime, *,
                   sources: tuple[str, ...] = REPLAY_SOURCES) -> Traffic:
    """Every request logged in [start, end) from ``sources``, at its original offset from the first one."""
    if not sources:
        raise InputError("choose at least one source to replay", field="source")
    marks = ", ".join("?" for _ in sources)
    where = f"ts >= ? AND ts < ? AND source IN ({marks})"  # placeholders only: values go as parameters
    df = log.query(f"SELECT ts, tier, task, input_tokens, output_tokens FROM requests WHERE {where} "
                   "ORDER BY ts, request_id", [start, end, *sources])
    if df.empty:
        raise InputError(f"no logged requests from {', '.join(sources)} between {start:%Y-%m-%d %H:%M} and "
                          f"{end:%Y-%m-%d %H:%M} UTC to replay", field="replay")
    ts = df["ts"].to_numpy(dtype="datetime64[us]")
    arrival = (ts - ts[0]).astype("timedelta64[us]").astype(np.int64) / 1e6
    tier_names = tuple(dict.fromkeys(df["tier"].tolist()))
    task_names = tuple(dict.fromkeys(df["task"].tolist()))
    tier_idx = df["tier"].map({t: i for i, t in enumerate(tier_names)}).to_numpy(dtype=np.int16)
    task_idx = df["task"].map({t: i for i, t in enumerate(task_names)}).to_numpy(dtype=np.int16)
    input_tokens = df["input_tokens"].to_numpy(dtype=np.int64, copy=True)
    output_tokens = df["output_tokens"].to_numpy(dtype=np.int64, copy=True)
    # A request that failed logged no tokens: give it its task's median from the rest of the log.
    for k in range(len(task_names)):
        rows = task_idx == k
        for column, fallback in ((input_tokens, 0), (output_tokens, 1)):
            known = column[rows & (column > 0)]
            typical = int(np.median(known)) if known.size else DEFAULT_TOKENS.get(task_names[k], (150, 400))[fallback]
            column[rows & (column <= 0)] = typical
    first = df["ts"].iloc[0].to_pydatetime()
    first = first.replace(tzinfo=timezone.utc) if first.tzinfo is None else first.astimezone(timezone.utc)
    desc = (f"{len(df):,} logged requests ({', '.join(sources)}) from {start:%Y-%m-%d %H:%M} "
            f"to {end:%Y-%m-%d %H:%M} UTC")
    return Traffic(start=first, arrival_s=arrival, tier_idx=tier_idx, task_idx=task_idx, input_tokens=input_tokens,
                   output_tokens=output_tokens, tiers=tier_names, tasks=task_names, description=desc,
                   meta={"kind": "replay", "from": start.isoformat(), "to": end.isoformat(),
                         "sources": list(sources)})
