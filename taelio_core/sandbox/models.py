"""How each simulated provider and model behaves, and the scenarios that bend it.

A ``ProviderModel`` is the simulator's ``SimProfile`` for one provider:model pair (the one provider
model, in ``taelio_core.providers.simulated``), with its name: its latency
distribution (lognormal, median and spread, with time to first token), its
error rates by class, its rate limits in requests and tokens per minute, and
its outages (windows of virtual time in which every call fails one way).
They come from the policy's ``[simulator]`` tables (``models_from_policy``),
from the call log (``taelio_core.sandbox.fitting``), or by hand; a scenario
then rewrites them ("OpenAI down for 30 minutes").

Everything here is a plain frozen value, so a model set can be shown,
edited on the page, saved with a run and compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from taelio_core.config.policy import RoutingPolicy
from taelio_core.errors import InputError
from taelio_core.providers.simulated import ERROR_CLASSES, Outage, RateLimit, SimProfile, profile_from_config

__all__ = [
    "ERROR_CLASSES",
    "SCENARIOS",
    "ModelSet",
    "Outage",
    "ProviderModel",
    "RateLimit",
    "Scenario",
    "apply_scenario",
    "models_from_policy",
    "parse_scenario",
]

Z95 = 1.6448536269514722  # the standard normal's 95th percentile


@dataclass(frozen=True, kw_only=True)
class ProviderModel(SimProfile):
    """One provider:model's behaviour (the simulator's ``SimProfile``), with its name and where it came from."""

    provider: str
    model: str
    tokens_per_task: dict[str, float] = field(default_factory=dict)  # mean output tokens (fitted; shown)
    fitted_from: int = 0             # log rows behind the numbers (0: set by hand or from the policy)

    @property
    def ref(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def p95_ms(self) -> float:
        return self.latency_ms * math.exp(Z95 * self.latency_sigma)

    def as_row(self) -> dict[str, object]:
        row: dict[str, object] = {"provider": self.provider, "model": self.model,
                                  "latency_p50_ms": round(self.latency_ms, 1), "latency_p95_ms": round(self.p95_ms, 1),
                                  "ttft_ms": round(self.ttft_ms, 1), "retry_after_s": self.retry_after_s}
        for error in ERROR_CLASSES:
            row[f"p_{error}"] = round(self.error_rates.get(error, 0.0), 4)
        row["outages"] = "; ".join(f"{o.error} {o.start_s / 60:g}-{o.end_s / 60:g} min" for o in self.outages)
        row["tokens_per_task"] = ", ".join(f"{k}={v:.0f}" for k, v in sorted(self.tokens_per_task.items()))
        row["fitted_rows"] = self.fitted_from
        return row


@dataclass(frozen=True, kw_only=True)
class ModelSet:
    """Every provider:model the policies use, plus per-provider rate limits."""

    models: dict[str, ProviderModel]            # by "provider:model"
    limits: dict[str, RateLimit] = field(default_factory=dict)   # by provider
    source: str = "policy"                      # policy | log | hand

    def get(self, provider: str, model: str) -> ProviderModel:
        found = self.models.get(f"{provider}:{model}")
        if found is None:
            # A model only policy B uses: borrow the provider's first model's behaviour.
            same = [m for m in self.models.values() if m.provider == provider]
            base = same[0] if same else ProviderModel(provider=provider, model=model)
            found = replace(base, model=model, fitted_from=0)
        return found

    def covering(self, policies: list[RoutingPolicy]) -> ModelSet:
        """This set, with an entry for every provider:model any of ``policies`` routes to."""
        models = dict(self.models)
        for policy in policies:
            for chain in policy.chains.values():
                for entry in chain:
                    if entry.ref not in models:
                        models[entry.ref] = self.get(entry.provider, entry.model)
        return replace(self, models=models)

    def rows(self) -> list[dict[str, object]]:
        rows = [m.as_row() for m in self.models.values()]
        for row in rows:
            limit = self.limits.get(str(row["provider"]), RateLimit())
            row["rpm_limit"], row["tpm_limit"] = limit.rpm, limit.tpm
        return rows


def models_from_policy(policy: RoutingPolicy, *extra: RoutingPolicy) -> ModelSet:
    """Provider models from the policy's ``[simulator]`` tables (defaults where a provider has none)."""
    models: dict[str, ProviderModel] = {}
    for pol in (policy, *extra):
        for chain in pol.chains.values():
            for entry in chain:
                if entry.ref in models:
                    continue
                cfg = policy.model.simulator.get(entry.provider) or pol.model.simulator.get(entry.provider)
                models[entry.ref] = ProviderModel(provider=entry.provider, model=entry.model,
                                                  **vars(profile_from_config(cfg)))
    return ModelSet(models=models, source="policy")


# ---- scenarios ---------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A named change to the provider models. ``kind``: down | rpm | slow | retired."""

    name: str
    kind: str
    provider: str
    value: float = 0.0
    model: str = ""
    label: str = ""

    def describe(self, duration_s: float) -> str:
        if self.kind == "down":
            start = outage_start(duration_s)
            return (f"{self.provider} returns 503 for {self.value:g} minutes, "
                    f"from {start / 60:.0f} min into the traffic")
        if self.kind == "rpm":
            return f"{self.provider} allows {self.value:g} requests per minute (429 with Retry-After beyond)"
        if self.kind == "slow":
            return f"{self.provider}'s p95 latency is {self.value:g}x (median unchanged)"
        return f"{self.provider}:{self.model or '(first model in a chain)'} answers 404 model_not_found"


SCENARIOS: dict[str, Scenario] = {
    "openai-down-30m": Scenario(name="openai-down-30m", kind="down", provider="openai", value=30,
                                label="OpenAI down for 30 minutes"),
    "anthropic-rate-limited-50rpm": Scenario(name="anthropic-rate-limited-50rpm", kind="rpm", provider="anthropic",
                                             value=50, label="Anthropic rate-limited at 50 RPM"),
    "gemini-p95-x4": Scenario(name="gemini-p95-x4", kind="slow", provider="gemini", value=4,
                              label="Gemini p95 latency x4"),
    "model-retired": Scenario(name="model-retired", kind="retired", provider="openai", model="",
                              label="A model retired (the first OpenAI model in a chain answers 404)"),
}
_KINDS = {"down": "minutes", "rpm": "requests per minute", "slow": "p95 factor", "retired": "model"}


def parse_scenario(name: str | None) -> Scenario | None:
    """A preset by name, or ``down:PROVIDER:MINUTES``, ``rpm:PROVIDER:N``, ``slow:PROVIDER:FACTOR``,
    ``retired:PROVIDER:MODEL``. ``None``/``none`` means no scenario."""
    if name is None or name in ("", "none"):
        return None
    if name in SCENARIOS:
        return SCENARIOS[name]
    kind, _, rest = name.partition(":")
    provider, _, value = rest.partition(":")
    presets = ", ".join(SCENARIOS)
    if kind not in _KINDS or not provider or not value:
        raise InputError(f"unknown scenario '{name}' (presets: {presets}; or down:PROVIDER:MINUTES, "
                          "rpm:PROVIDER:N, slow:PROVIDER:FACTOR, retired:PROVIDER:MODEL)", field="scenario")
    if kind == "retired":
        return Scenario(name=name, kind=kind, provider=provider, model=value, label=name)
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"scenario '{name}': the {_KINDS[kind]} must be a number, not '{value}'",
                          field="scenario") from None
    if number <= 0:
        raise InputError(f"scenario '{name}': the {_KINDS[kind]} must be above 0", field="scenario")
    return Scenario(name=name, kind=kind, provider=provider, value=number, label=name)


def outage_start(duration_s: float) -> float:
    """Outages start a third of the way into the traffic, so the charts show before, during and after."""
    return duration_s / 3.0


def apply_scenario(models: ModelSet, scenario: Scenario | None, *, duration_s: float,
                   policies: list[RoutingPolicy]) -> ModelSet:
    if scenario is None:
        return models
    known = sorted({p for pol in policies for p in pol.providers})
    if scenario.provider not in known:
        raise InputError(f"scenario '{scenario.name}' names provider '{scenario.provider}', which the policy "
                          f"does not have (providers: {', '.join(known)})", field="scenario")
    updated = dict(models.models)
    limits = dict(models.limits)
    mine = [ref for ref, m in updated.items() if m.provider == scenario.provider]
    if scenario.kind == "down":
        start = outage_start(duration_s)
        outage = Outage(start_s=start, end_s=start + scenario.value * 60.0, error="unavailable")
        for ref in mine:
            updated[ref] = replace(updated[ref], outages=updated[ref].outages + (outage,))
    elif scenario.kind == "rpm":
        limits[scenario.provider] = replace(limits.get(scenario.provider, RateLimit()), rpm=scenario.value)
    elif scenario.kind == "slow":
        extra = math.log(scenario.value) / Z95
        for ref in mine:
            updated[ref] = replace(updated[ref], latency_sigma=updated[ref].latency_sigma + extra)
    else:
        model = scenario.model or _first_model(scenario.provider, policies)
        ref = f"{scenario.provider}:{model}"
        base = updated.get(ref) or models.get(scenario.provider, model)
        updated[ref] = replace(base, outages=base.outages + (Outage(start_s=0.0, error="model_not_found"),))
    return replace(models, models=updated, limits=limits)


def _first_model(provider: str, policies: list[RoutingPolicy]) -> str:
    for policy in policies:
        for chain in policy.chains.values():
            for entry in chain:
                if entry.provider == provider:
                    return entry.model
    raise InputError(f"no chain uses provider '{provider}'", field="scenario")
