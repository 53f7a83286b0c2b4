"""What an experiment is made of: variants, inputs, cells, and the spec a user fills in.

A variant is a prompt template × one provider:model × generation settings.
The spec arrives from outside (a form, CLI flags), so it is pydantic and is
checked against the policy before anything is stored: unknown providers,
templates with placeholders the inputs lack, impossible settings. Stored
experiments come back as frozen dataclasses.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taelio_core.config.policy import ChainEntry, RoutingPolicy
from taelio_core.errors import InputError
from taelio_core.experiments.assertions import Assertion, AssertionSpec
from taelio_core.routing.generation import ChatRequest, GenerationSettings

__all__ = ["Cell", "Experiment", "ExperimentSpec", "InputRow", "Variant", "VariantSpec", "cross_variants",
           "placeholders"]

MAX_VARIANTS = 8


class VariantSpec(BaseModel):
    """One variant as a user describes it. Templates default to the experiment task's."""

    model_config = ConfigDict(extra="forbid")

    label: str = ""
    model: str                                   # provider:model
    system: str | None = None
    user: str | None = None
    max_tokens: int | None = Field(default=None, gt=0, le=200_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    timeout_s: float | None = Field(default=None, gt=0.0, le=600.0)

    @field_validator("model")
    @classmethod
    def _ref(cls, value: str) -> str:
        ChainEntry.parse(value)  # raises ValueError with a clear sentence
        return value.strip()


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    tier: str = "pro"
    task: str = "idea"
    variants: list[VariantSpec] = Field(min_length=2, max_length=MAX_VARIANTS)
    concurrency: int = Field(default=4, ge=1, le=64)
    cost_cap_usd: Decimal | None = Field(default=None, gt=0)
    inputs_kind: Literal["prompt", "csv", "set"] = "prompt"
    notes: str = ""
    assertions: list[AssertionSpec] = Field(default_factory=list, max_length=20)


@dataclass(frozen=True, kw_only=True)
class Variant:
    variant_id: str
    position: int
    label: str
    provider: str
    model: str
    system_template: str
    user_template: str
    settings: GenerationSettings

    @property
    def ref(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def entry(self) -> ChainEntry:
        return ChainEntry(provider=self.provider, model=self.model)

    def render(self, variables: dict[str, str], task: str) -> ChatRequest:
        return ChatRequest(system=self.system_template.format(**variables),
                           user=self.user_template.format(**variables), settings=self.settings, task=task,
                           variables=tuple(variables.items()))


@dataclass(frozen=True, kw_only=True)
class InputRow:
    input_id: int
    variables: dict[str, str]

    @property
    def prompt(self) -> str:
        return self.variables.get("prompt", "")


@dataclass(frozen=True, kw_only=True)
class Experiment:
    experiment_id: str
    name: str
    tier: str
    task: str
    concurrency: int
    cost_cap_usd: Decimal | None
    inputs_kind: str
    notes: str
    variants: tuple[Variant, ...]
    inputs: tuple[InputRow, ...]
    assertions: tuple[Assertion, ...] = ()

    def variant(self, variant_id: str) -> Variant:
        for v in self.variants:
            if v.variant_id == variant_id:
                return v
        raise InputError(f"experiment {self.experiment_id} has no variant '{variant_id}'", field="variant")

    @property
    def labels(self) -> dict[str, str]:
        return {v.variant_id: v.label for v in self.variants}


@dataclass(frozen=True, kw_only=True)
class Cell:
    input_id: int
    variant_id: str
    status: str                  # ok | failed | truncated
    output: str
    error: str | None
    latency_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    request_id: str | None
    tries: int = 1

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def cross_variants(templates: dict[str, str], models: list[str], *, temperature: float | None = None) -> list[VariantSpec]:
    """Every template on every model: "two prompts across two providers" is four variants.

    ``templates`` maps a short name to a user template; labels read "name · provider:model".
    """
    if not templates or not models:
        raise InputError("pick at least one prompt template and one model", field="variant")
    if len(templates) * len(models) > MAX_VARIANTS:
        raise InputError(f"{len(templates)} templates × {len(models)} models is {len(templates) * len(models)} "
                         f"variants; the limit is {MAX_VARIANTS}", field="variant")
    return [VariantSpec(label=f"{name} · {model}", model=model, user=template, temperature=temperature)
            for name, template in templates.items() for model in models]


def placeholders(template: str) -> list[str]:
    """Names used as ``{name}`` in a template; raises ``ValueError`` on a broken template."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def build_variants(specs: list[VariantSpec], policy: RoutingPolicy, *, tier: str, task: str,
                   columns: set[str]) -> list[Variant]:
    """Turn specs into variants, each error naming the variant and field."""
    if task not in policy.tasks:
        raise InputError(f"unknown task '{task}' (tasks: {', '.join(policy.tasks)})", field="task")
    if tier not in policy.tiers:
        raise InputError(f"unknown tier '{tier}' (tiers: {', '.join(policy.tiers)})", field="tier")
    task_cfg = policy.task(task)
    base = policy.settings(tier, task)
    out: list[Variant] = []
    labels: set[str] = set()
    for i, spec in enumerate(specs, start=1):
        where = f"variant {i}"
        entry = ChainEntry.parse(spec.model)
        if entry.provider not in policy.providers:
            raise InputError(f"{where}: unknown provider '{entry.provider}' "
                             f"(providers: {', '.join(policy.providers)})", field="variant")
        label = (spec.label or "").strip() or f"{entry.ref}" + (f" #{i}" if entry.ref in labels else "")
        if label in labels:
            raise InputError(f"{where}: the label '{label}' is used twice", field="variant")
        labels.add(label)
        system = task_cfg.system if spec.system is None else spec.system
        user = task_cfg.user if spec.user is None else spec.user
        for name, template in (("system", system), ("user", user)):
            try:
                names = placeholders(template)
            except ValueError as e:
                raise InputError(f"{where}: the {name} template is broken ({e}); write a literal brace as "
                                 "{{ or }}", field="variant") from None
            unknown = sorted(set(names) - columns)
            if unknown:
                raise InputError(f"{where}: the {name} template uses {{{unknown[0]}}}, which the inputs lack "
                                 f"(columns: {', '.join(sorted(columns))})", field="variant")
        if not user.strip():
            raise InputError(f"{where}: the user template is empty", field="variant")
        settings = GenerationSettings(
            max_tokens=spec.max_tokens if spec.max_tokens is not None else base.max_tokens,
            temperature=spec.temperature if spec.temperature is not None else base.temperature,
            timeout_s=spec.timeout_s if spec.timeout_s is not None else base.timeout_s)
        out.append(Variant(variant_id=f"v{i}", position=i, label=label, provider=entry.provider,
                           model=entry.model, system_template=system, user_template=user, settings=settings))
    return out
