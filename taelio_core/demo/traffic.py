"""What the demo log's users ask, and when: the traffic the demo generator sends through the router.

Requests arrive over the ``days`` before ``now`` with a daily curve (quiet at
night, busy in the afternoon), from the policy's tiers (each half as busy as
the one before) and tasks (a task another builds on, the idea, twice as often
as the rest). Each carries what a user would type: a premise, a genre and a
tone, and a user id (a few heavy users, many light ones). A share of the
ideas are the first half of an idea -> story flow: the story is asked, on
that idea, once the idea is in. Two providers have an outage somewhere in the
window. The same ``seed`` and ``now`` give the same traffic.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from taelio_core.config.policy import RoutingPolicy
from taelio_core.routing.inputs import Inputs
from taelio_core.sandbox.traffic import DEFAULT_TOKENS, Traffic

__all__ = ["DemoOutage", "DemoTraffic", "GENRES", "PREMISES", "TONES", "demo_outages", "demo_traffic"]

PREMISES = ["a lighthouse keeper finds a message in a bottle", "a city where it never stops raining",
            "two rival bakers on a night train", "a robot that collects lost umbrellas",
            "the last librarian on a drifting ship", "a map with one island too many",
            "a detective who cannot lie", "a garden that grows memories"]
GENRES = ["Mystery", "Fantasy", "Science fiction", "Romance", "Horror", "Adventure"]
TONES = ["Dark and atmospheric", "Light and humorous", "Hopeful", "Tense", "Whimsical"]
USERS = 500
OUTAGES = 2
PAIR_SHARE = 0.3       # share of the ideas that go on to a story, under one parent id
STREAMED_SHARE = 0.7   # share of requests that stream (as the Generate page does)


@dataclass(frozen=True, kw_only=True)
class DemoOutage:
    """A stretch of time when one provider answered 503 to every call."""

    provider: str
    start: datetime
    end: datetime


@dataclass(frozen=True, kw_only=True, eq=False)
class DemoTraffic:
    traffic: Traffic
    inputs: list[Inputs]          # per request
    users: list[str]
    streamed: np.ndarray          # bool per request
    # Per request: -1, or the request slot of its follow-up. A follow-up is asked by the user who asked the
    # idea, once it is in: the story on it, or the idea again if it failed. Its own arrival is not used.
    follow_up: np.ndarray
    is_follow_up: np.ndarray      # bool per request
    story_task: str | None        # the task that builds on another (story), if the policy has one


def demo_outages(policy: RoutingPolicy, *, days: int, seed: int, now: datetime) -> list[DemoOutage]:
    """The outage episodes ``generate_demo_data`` simulates for these arguments."""
    rng = np.random.default_rng([seed, 7919])
    providers = list(dict.fromkeys(entry.provider for chain in policy.chains.values() for entry in chain))
    start, end = now - timedelta(days=days), now
    span = (end - start).total_seconds()
    chosen = rng.choice(len(providers), size=min(OUTAGES, len(providers)), replace=False)
    out = []
    for k, p in enumerate(chosen):
        # Spread them out: one in each part of the window, away from its edges.
        lo, hi = (0.1 + 0.8 * k / len(chosen)), (0.1 + 0.8 * (k + 1) / len(chosen))
        begin = start + timedelta(seconds=float(rng.uniform(lo, hi)) * span * 0.9)
        length = timedelta(hours=float(rng.uniform(2, 6)))
        out.append(DemoOutage(provider=providers[int(p)], start=begin, end=min(begin + length, end)))
    return out


def demo_traffic(policy: RoutingPolicy, *, days: int, requests: int, seed: int, now: datetime,
                 pair_share: float = PAIR_SHARE) -> DemoTraffic:
    tiers, tasks = policy.tiers, policy.tasks
    needed = {policy.task(t).needs for t in tasks} - {None}
    story_task = next((t for t in tasks if policy.task(t).needs is not None), None)
    tier_weight = {t: 0.5 ** k for k, t in enumerate(tiers)}
    # Stories are asked mostly after their idea (the pairs below), so as a first request they are rarer.
    task_weight = {t: 2.0 if t in needed else 1.0 for t in tasks}
    start = now - timedelta(days=days)
    rng = np.random.default_rng([seed, 104_729])
    # The last minute stays empty: a request at ``now`` would still be running.
    arrival = _arrivals(rng, requests, start=start, duration_s=days * 86_400.0 - 60.0)
    pairs = [(ti, ki) for ti in range(len(tiers)) for ki in range(len(tasks))]
    weights = np.array([tier_weight[tiers[ti]] * task_weight[tasks[ki]] for ti, ki in pairs])
    choice = rng.choice(len(pairs), size=requests, p=weights / weights.sum())
    tier_idx = np.array([pairs[c][0] for c in choice.tolist()], np.int16)
    task_idx = np.array([pairs[c][1] for c in choice.tolist()], np.int16)
    # Output sizes by task (the story several times the idea); input sizes come from the rendered prompt.
    medians = np.array([DEFAULT_TOKENS.get(t, (150, 400))[1] for t in tasks], float)
    output_tokens = np.maximum(8, medians[task_idx] * rng.lognormal(0.0, 0.45, requests)).astype(np.int64)
    traffic = Traffic(start=start, arrival_s=arrival, tier_idx=tier_idx, task_idx=task_idx,
                      input_tokens=np.zeros(requests, np.int64), output_tokens=output_tokens, tiers=tuple(tiers),
                      tasks=tuple(tasks), description=f"{requests:,} demo requests over {days} days",
                      meta={"kind": "demo"})
    premise = rng.integers(0, len(PREMISES), requests)
    genre = rng.integers(0, len(GENRES), requests)
    tone = rng.integers(0, len(TONES), requests)
    inputs = [Inputs(prompt=f"(simulated demo) {PREMISES[p]}", genre=GENRES[g], tone=TONES[t])
              for p, g, t in zip(premise.tolist(), genre.tolist(), tone.tolist())]
    user = np.minimum(rng.zipf(1.4, requests), USERS) - 1
    users = [f"demo-user-{u:04d}" for u in user.tolist()]
    streamed = rng.random(requests) < STREAMED_SHARE
    follow_up = np.full(requests, -1, np.int64)
    is_follow_up = np.zeros(requests, bool)
    if story_task is not None:
        is_needed = np.array([traffic.tasks[k] in needed for k in traffic.task_idx.tolist()], bool)
        first = np.flatnonzero(is_needed & (rng.random(requests) < pair_share))
        # Each pair takes two slots of the traffic, so the log holds exactly ``requests`` requests.
        first = first[: requests // 2]
        rest = np.setdiff1d(np.arange(requests), first, assume_unique=True)
        second = rng.permutation(rest)[: len(first)]
        first = first[: len(second)]
        follow_up[first] = second
        is_follow_up[second] = True
        story_median = DEFAULT_TOKENS.get(story_task, (150, 400))[1]
        output_tokens[second] = np.maximum(8, story_median * rng.lognormal(0.0, 0.45, len(second)))
    return DemoTraffic(traffic=traffic, inputs=inputs, users=users, streamed=streamed, follow_up=follow_up,
                       is_follow_up=is_follow_up, story_task=story_task)


def _arrivals(rng: np.random.Generator, n: int, *, start: datetime, duration_s: float) -> np.ndarray:
    """``n`` sorted arrival seconds with a density that follows the day (a peak at 15:00 UTC, a fifth of it at
    night), the week (weekends at 65 %) and slow growth (+50 % over the window)."""
    grid = np.linspace(0.0, duration_s, max(2, int(duration_s // 600) + 1))   # ten-minute steps
    at = start.timestamp() + grid
    hours = (at / 3600.0) % 24.0
    weekday = (np.floor(at / 86_400.0) + 3) % 7                             # 1970-01-01 was a Thursday
    distance = np.minimum(np.abs(hours - 15.0), 24.0 - np.abs(hours - 15.0))
    density = (0.25 + np.exp(-(distance / 5.0) ** 2)) * np.where(weekday >= 5, 0.65, 1.0) * np.linspace(
        0.8, 1.2, len(grid))
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2.0)])
    cdf /= cdf[-1]
    return np.interp(np.sort(rng.uniform(0.0, 1.0, n)), cdf, grid)
