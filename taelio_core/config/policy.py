"""The routing policy, validated: tiers, tasks, their provider chains, prices and budgets.

A policy is a TOML file (``policy_parser`` reads and checks it; ``policy_schema``
lists its keys). Two ship with Taelio: ``seed`` (the seed notes' table, exactly)
and ``current`` (the same structure with present-day models). Choose one by name
or path with ``TAELIO_POLICY`` or ``--policy``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from taelio_core.routing.generation import GenerationSettings

if TYPE_CHECKING:
    from taelio_core.config.policy_schema import ProviderConfig, TaskConfig, TierConfig, _PolicyModel
    from taelio_core.config.traffic_split import TrafficSplit

__all__ = ["ChainEntry", "RoutingPolicy"]


@dataclass(frozen=True, kw_only=True)
class ChainEntry:
    provider: str
    model: str

    @cached_property
    def ref(self) -> str:
        """``provider:model``, made once per entry (it is read several times per attempt)."""
        return f"{self.provider}:{self.model}"

    @classmethod
    def parse(cls, ref: str) -> ChainEntry:
        provider, sep, model = ref.partition(":")
        if not sep or not provider.strip() or not model.strip():
            raise ValueError(f"'{ref}' is not of the form provider:model")
        return cls(provider=provider.strip(), model=model.strip())



@dataclass(frozen=True, kw_only=True)
class RoutingPolicy:
    """A validated policy. Build it with ``load_policy`` or ``parse_policy``."""

    name: str
    description: str
    source: str
    text: str
    model: _PolicyModel
    chains: dict[tuple[str, str], tuple[ChainEntry, ...]]
    splits: dict[tuple[str, str], TrafficSplit] = field(default_factory=dict)
    judge_chain: tuple[ChainEntry, ...] = ()
    # settings() per (tier, task): the policy never changes once built, and merging the layers through
    # pydantic cost ~10 us on every request. init=False so dataclasses.replace() starts a fresh cache.
    _settings: dict[tuple[str, str], GenerationSettings] = field(default_factory=dict, init=False, repr=False,
                                                                 compare=False)

    def split(self, tier: str, task: str) -> TrafficSplit | None:
        return self.splits.get((tier, task))

    @property
    def tiers(self) -> list[str]:
        return list(self.model.tiers)

    @property
    def tasks(self) -> list[str]:
        return list(self.model.tasks)

    @property
    def providers(self) -> dict[str, ProviderConfig]:
        return self.model.providers

    def chain(self, tier: str, task: str) -> tuple[ChainEntry, ...]:
        return self.chains[(tier, task)]

    def task(self, task: str) -> TaskConfig:
        return self.model.tasks[task]

    def tier(self, tier: str) -> TierConfig:
        return self.model.tiers[tier]

    def settings(self, tier: str, task: str) -> GenerationSettings:
        """Defaults, overridden by the task, then the tier, then the tier's task table."""
        cached = self._settings.get((tier, task))
        if cached is not None:
            return cached
        merged: dict[str, Any] = self.model.defaults.model_dump()
        tier_cfg = self.model.tiers[tier]
        layers = [self.model.tasks[task], tier_cfg, tier_cfg.tasks.get(task)]
        for layer in layers:
            if layer is None:
                continue
            for key in ("max_tokens", "temperature", "timeout_s"):
                value = getattr(layer, key)
                if value is not None:
                    merged[key] = value
        settings = self._settings[(tier, task)] = GenerationSettings(**merged)
        return settings

    def models_of(self, provider: str) -> list[str]:
        seen: dict[str, None] = {}
        for chain in self.chains.values():
            for entry in chain:
                if entry.provider == provider:
                    seen[entry.model] = None
        return list(seen)

