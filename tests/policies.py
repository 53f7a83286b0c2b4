"""Routing policies for tests and benchmarks, built as data and written as real TOML.

Tests used to copy whole policy files into string constants and to
string-replace the shipped ``current`` policy ("latency_ms = 700" → "5"). A
copy drifts from the format, and a replace that no longer matches changes
nothing without a word. Here a policy is a few keyword arguments (only what
the test cares about), the rest takes small defaults, and the text goes
through ``tomli_w`` and the real ``parse_policy``, so every test still reads
a policy file exactly as a user's would be read.

    build_policy(providers={"a": "simulated"}, routes={"pro": {"idea": ["a:a1"]}})
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import tomli_w

from taelio_core.config.policy import RoutingPolicy

from taelio_core.config.policy_parser import load_policy, parse_policy

__all__ = ["build_policy", "fast_current_policy_text", "policy_text"]

IDEA_TASK = {"idea": {"user": "Premise: {prompt}"}}


def policy_text(*, name: str = "test", providers: Mapping[str, str | Mapping[str, Any]],
                routes: Mapping[str, Mapping[str, Sequence[str]]], tasks: Mapping[str, Mapping[str, Any]] = IDEA_TASK,
                tiers: Mapping[str, Mapping[str, Any]] | None = None,
                pricing: Mapping[str, tuple[float, float]] | None = None, extra: str = "",
                **tables: Mapping[str, Any] | None) -> str:
    """A policy file's text.

    ``providers`` maps a name to its kind, or to its whole table (``{"kind": "openai", "base_url": ...}``).
    ``tiers`` defaults to one empty table per tier named in ``routes``. ``pricing`` maps ``provider:model`` to
    (input, output) dollars per million tokens. Any other table (``defaults``, ``resilience``, ``breakers``,
    ``hedging``, ``budgets``, ``simulator``, ``judge``...) is passed by name; ``None`` leaves it out. ``extra``
    is raw TOML appended as written, for the tests about malformed files.
    """
    doc: dict[str, Any] = {"name": name}
    doc["providers"] = {n: {"kind": p} if isinstance(p, str) else dict(p) for n, p in providers.items()}
    doc["tasks"] = {task: dict(spec) for task, spec in tasks.items()}
    doc["tiers"] = {tier: dict(spec) for tier, spec in (tiers or {t: {} for t in routes}).items()}
    doc["routes"] = {tier: {task: list(chain) for task, chain in chains.items()} for tier, chains in routes.items()}
    if pricing:
        doc["pricing"] = {ref: {"input_per_mtok": i, "output_per_mtok": o} for ref, (i, o) in pricing.items()}
    doc.update({key: dict(value) for key, value in tables.items() if value is not None})
    text = tomli_w.dumps(doc)
    return text + ("\n" + extra if extra else "")


def build_policy(*, source: str = "test.toml", **kwargs: Any) -> RoutingPolicy:
    """``policy_text(**kwargs)`` parsed as the file ``source``."""
    return parse_policy(policy_text(**kwargs), source=source)


def fast_current_policy_text(*, latency_ms: float = 5, simulated: bool = False) -> str:
    """The shipped ``current`` policy with fast, error-free simulator profiles.

    With ``simulated`` every provider's kind becomes ``simulated``; without, the real kinds stay (priced
    from the catalogue) and the caller runs in demo mode so the simulator stands in for them.
    """
    doc = tomllib.loads(load_policy("current").text)
    profiles = doc.get("simulator", {})
    assert profiles, "the current policy has no [simulator] profiles to speed up"
    for profile in profiles.values():
        profile["latency_ms"] = latency_ms
        profile.pop("error_rates", None)
    if simulated:
        for table in doc["providers"].values():
            table["kind"] = "simulated"
    return tomli_w.dumps(doc)
