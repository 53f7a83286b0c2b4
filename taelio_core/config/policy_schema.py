"""The policy file's schema: every table and key a policy may hold, with its type and bounds.

Pydantic models, strict (an unknown key is an error, so a misspelling is never
silently ignored) and frozen. ``policy_parser`` validates a file against
``_PolicyModel`` and then checks what a schema cannot (names that must refer to
each other); ``RoutingPolicy`` keeps the validated model.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taelio_core.guards.resilience import BreakerConfig, HedgeConfig, ResilienceConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SettingsOverride(_Strict):
    max_tokens: int | None = Field(default=None, gt=0, le=200_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    timeout_s: float | None = Field(default=None, gt=0.0, le=600.0)


class Defaults(_Strict):
    max_tokens: int = Field(default=1024, gt=0, le=200_000)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    timeout_s: float = Field(default=30.0, gt=0.0, le=600.0)


class ProviderConfig(_Strict):
    kind: str  # a kind in the provider registry (checked by parse_policy, which names the known ones)
    base_url: str | None = None
    # Environment variable holding the key. Empty string: the server needs no key.
    api_key_env: str | None = None
    label: str | None = None


class TaskConfig(SettingsOverride):
    label: str = ""
    system: str = ""
    user: str
    needs: str | None = None


class TierConfig(SettingsOverride):
    label: str = ""
    allow_provider_override: bool = False
    # Per user (the token's ``sub``) on the HTTP API; None: no limit.
    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_day: int | None = Field(default=None, gt=0)
    tasks: dict[str, SettingsOverride] = Field(default_factory=dict)


class PriceOverride(_Strict):
    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    cached_input_per_mtok: Decimal | None = Field(default=None, ge=0)


class BudgetLimit(_Strict):
    monthly: Decimal | None = Field(default=None, ge=0)
    daily: Decimal | None = Field(default=None, ge=0)
    alert_pct: float = Field(default=80.0, gt=0, le=100)
    hard: bool = False


class DegradeRule(_Strict):
    """When ``tier`` has used ``at_pct`` of its ``period`` budget, serve it with ``use``'s chains."""

    tier: str
    at_pct: float = Field(gt=0, le=100)
    period: Literal["monthly", "daily"] = "monthly"
    use: str


class Budgets(_Strict):
    tier: dict[str, BudgetLimit] = Field(default_factory=dict)
    provider: dict[str, BudgetLimit] = Field(default_factory=dict)
    degrade: list[DegradeRule] = Field(default_factory=list)
    # Count simulated calls' prices too (to rehearse budgets in demo mode); real money only by default.
    count_simulated: bool = False
    # With REDIS_URL, while Redis is unreachable: "closed" refuses calls that a hard budget covers (each
    # process alone cannot know what the others spend); "open" checks hard budgets per process meanwhile.
    when_redis_down: Literal["closed", "open"] = "closed"

    @field_validator("tier", "provider", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `free = 50.0` is short for `free = { monthly = 50.0 }`.
        if isinstance(value, dict):
            return {k: ({"monthly": v} if isinstance(v, int | float | str) and not isinstance(v, bool) else v)
                    for k, v in value.items()}
        return value


class SimulatorConfig(_Strict):
    latency_ms: float = Field(default=600.0, ge=0)
    latency_sigma: float = Field(default=0.35, ge=0)
    ttft_ms: float = Field(default=150.0, ge=0)
    output_tokens: int = Field(default=180, gt=0)
    retry_after_s: float = Field(default=1.0, ge=0)
    error_rates: dict[str, float] = Field(default_factory=dict)


DEFAULT_RUBRIC = ("Judge which response better answers the prompt: originality, vividness, coherence and "
                  "fit to the requested genre and tone. Ignore length unless it hurts the answer.")


class JudgeConfig(_Strict):
    """The LLM judge for experiments: its own chain, a rubric, and modest settings."""

    chain: list[str]
    rubric: str = DEFAULT_RUBRIC
    max_tokens: int = Field(default=300, gt=0, le=8000)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)


class SplitArmConfig(_Strict):
    """One arm of a live traffic split: a new head for the route's chain, or a whole chain."""

    weight: float = Field(gt=0)
    head: str | None = None
    chain: list[str] | None = None


class _PolicyModel(_Strict):
    name: str = ""
    description: str = ""
    defaults: Defaults = Field(default_factory=Defaults)
    providers: dict[str, ProviderConfig]
    tasks: dict[str, TaskConfig]
    tiers: dict[str, TierConfig]
    routes: dict[str, dict[str, list[str]]]
    pricing: dict[str, PriceOverride] = Field(default_factory=dict)
    budgets: Budgets = Field(default_factory=Budgets)
    simulator: dict[str, SimulatorConfig] = Field(default_factory=dict)
    resilience: ResilienceConfig = Field(default_factory=ResilienceConfig)
    breakers: BreakerConfig = Field(default_factory=BreakerConfig)
    hedging: dict[str, HedgeConfig] = Field(default_factory=dict)
    judge: JudgeConfig | None = None
    splits: dict[str, dict[str, dict[str, SplitArmConfig]]] = Field(default_factory=dict)

