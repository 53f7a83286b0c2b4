"""The routing policy: tiers, tasks, their provider chains, prices and budgets.

A policy is a TOML file. Two ship with Taelio: ``seed`` (the seed notes'
table, exactly) and ``current`` (the same structure with present-day models).
Choose one by name or path with ``TAELIO_POLICY`` or ``--policy``.

Everything is validated on load, and every mistake is one ``ConfigError``
naming the file, the key and the line, e.g.::

    policies/mine.toml:61, key 'routes.pro.idea': unknown provider 'opnai' (known: anthropic, gemini, openai)
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import string
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taelio_core.errors import ConfigError
from taelio_core.generation import GenerationSettings
from taelio_core.providers.registry import find_kind, kind_names
from taelio_core.resilience import BreakerConfig, HedgeConfig, ResilienceConfig

__all__ = [
    "BUILTIN_POLICIES",
    "ChainEntry",
    "JudgeConfig",
    "SplitArm",
    "TrafficSplit",
    "RoutingPolicy",
    "load_policy",
    "parse_policy",
    "policy_path",
]

BUILTIN_DIR = Path(__file__).parent / "policies"
BUILTIN_POLICIES = {"seed": BUILTIN_DIR / "seed.toml", "current": BUILTIN_DIR / "current.toml"}
BASE_PLACEHOLDERS = frozenset({"prompt", "genre", "tone"})
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


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
class SplitArm:
    name: str
    weight: float
    chain: tuple[ChainEntry, ...]


@dataclass(frozen=True, kw_only=True)
class TrafficSplit:
    """Live traffic for one tier x task shared between arms by weight.

    With a user id the choice is a hash of (tier, task, user), so a user stays
    on one arm for the life of the split; without one it is random.
    """

    tier: str
    task: str
    arms: tuple[SplitArm, ...]

    def choose(self, user_id: str | None = None, *, rng: random.Random | None = None) -> SplitArm:
        if user_id:
            digest = hashlib.sha256(f"{self.tier}.{self.task}:{user_id}".encode()).digest()
            u = int.from_bytes(digest[:8], "big") / 2**64
        else:
            u = (rng or random).random()
        total = sum(arm.weight for arm in self.arms)
        acc = 0.0
        for arm in self.arms:
            acc += arm.weight / total
            if u < acc:
                return arm
        return self.arms[-1]

    def reason(self, arm: SplitArm) -> str:
        """What the router records in ``routing_reason`` (the Compare page parses it back)."""
        return f"split {self.tier}.{self.task}={arm.name}"


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


def policy_path(name_or_path: str | os.PathLike[str] | None = None) -> Path:
    """Resolve a built-in policy name or a file path (default: ``TAELIO_POLICY`` or ``seed``)."""
    value = str(name_or_path or os.environ.get("TAELIO_POLICY") or "seed")
    if value in BUILTIN_POLICIES:
        return BUILTIN_POLICIES[value]
    path = Path(value).expanduser()
    if not path.exists():
        names = ", ".join(BUILTIN_POLICIES)
        raise ConfigError(f"policy file not found (built-in names: {names})", source=value)
    return path


def load_policy(name_or_path: str | os.PathLike[str] | None = None) -> RoutingPolicy:
    path = policy_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the policy file: {e.__class__.__name__}", source=str(path)) from e
    return parse_policy(text, source=_display(path))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_policy(text: str, *, source: str = "<policy>") -> RoutingPolicy:
    """Validate policy TOML text. Raises ``ConfigError`` with file, key and line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        found = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = int(found.group(1)) if found else None
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e)) or str(e)
        raise ConfigError(f"malformed TOML: {msg}", source=source, line=line) from None
    try:
        model = _PolicyModel.model_validate(raw)
    except ValidationError as e:
        # A misspelt key also makes the real one "missing": name the misspelling, it is the cause.
        err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc) or None
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        raise ConfigError(msg, source=source, key=key, line=locate(text, loc)) from None

    def fail(message: str, *loc: str) -> ConfigError:
        return ConfigError(message, source=source, key=".".join(loc), line=locate(text, loc))

    for section in ("providers", "tasks", "tiers"):
        if not getattr(model, section):
            raise fail(f"at least one entry is needed under [{section}]", section)
        for name in getattr(model, section):
            if not _NAME.match(name):
                raise fail("names are lower-case letters, digits, '-' and '_'", section, name)

    for name, cfg in model.providers.items():
        kind = find_kind(cfg.kind)
        if kind is None:
            raise fail(f"unknown provider kind '{cfg.kind}' (known: {', '.join(kind_names())}; a new kind is a "
                       f"module taelio_core/providers/{cfg.kind}.py that registers it)", "providers", name, "kind")

    for task_name, task in model.tasks.items():
        allowed = set(BASE_PLACEHOLDERS)
        if task.needs is not None:
            if task.needs not in model.tasks or task.needs == task_name:
                raise fail(f"'needs' names an unknown task '{task.needs}'", "tasks", task_name, "needs")
            allowed.add(task.needs)
        for field_name in ("system", "user"):
            for placeholder in _placeholders(getattr(task, field_name), source, text, ("tasks", task_name, field_name)):
                if placeholder not in allowed:
                    raise fail(f"unknown placeholder '{{{placeholder}}}' (allowed: "
                               + ", ".join("{" + p + "}" for p in sorted(allowed)) + ")",
                               "tasks", task_name, field_name)

    for tier_name, tier in model.tiers.items():
        for task_name in tier.tasks:
            if task_name not in model.tasks:
                raise fail(f"unknown task '{task_name}'", "tiers", tier_name, "tasks", task_name)

    chains: dict[tuple[str, str], tuple[ChainEntry, ...]] = {}
    known_providers = ", ".join(sorted(model.providers))

    def parse_entries(refs: list[str], *loc: str) -> tuple[ChainEntry, ...]:
        if not refs:
            raise fail("the chain is empty: list at least one provider:model", *loc)
        entries: list[ChainEntry] = []
        for ref in refs:
            try:
                entry = ChainEntry.parse(ref)
            except ValueError as e:
                raise fail(str(e), *loc) from None
            if entry.provider not in model.providers:
                raise fail(f"unknown provider '{entry.provider}' (known: {known_providers})", *loc)
            if entry in entries:
                raise fail(f"duplicate entry '{entry.ref}'", *loc)
            entries.append(entry)
        return tuple(entries)

    for tier_name, by_task in model.routes.items():
        if tier_name not in model.tiers:
            raise fail(f"unknown tier '{tier_name}' (tiers: {', '.join(model.tiers)})", "routes", tier_name)
        for task_name, refs in by_task.items():
            loc = ("routes", tier_name, task_name)
            if task_name not in model.tasks:
                raise fail(f"unknown task '{task_name}' (tasks: {', '.join(model.tasks)})", *loc)
            chains[(tier_name, task_name)] = parse_entries(refs, *loc)
    for tier_name in model.tiers:
        for task_name in model.tasks:
            if (tier_name, task_name) not in chains:
                raise fail(f"no route for tier '{tier_name}' and task '{task_name}'", "routes", tier_name)

    for ref in model.pricing:
        try:
            entry = ChainEntry.parse(ref)
        except ValueError as e:
            raise fail(str(e), "pricing", ref) from None
        if entry.provider not in model.providers:
            raise fail(f"unknown provider '{entry.provider}' (known: {known_providers})", "pricing", ref)
    for tier_name in model.budgets.tier:
        if tier_name not in model.tiers:
            raise fail(f"unknown tier '{tier_name}'", "budgets", "tier", tier_name)
    for provider_name in model.budgets.provider:
        if provider_name not in model.providers:
            raise fail(f"unknown provider '{provider_name}'", "budgets", "provider", provider_name)
    for i, rule in enumerate(model.budgets.degrade):
        for key in ("tier", "use"):
            if getattr(rule, key) not in model.tiers:
                raise fail(f"unknown tier '{getattr(rule, key)}' (tiers: {', '.join(model.tiers)})",
                           "budgets", "degrade", str(i), key)
        if rule.tier == rule.use:
            raise fail("a tier cannot degrade to itself", "budgets", "degrade", str(i), "use")
    for tier_name in model.hedging:
        if tier_name not in model.tiers:
            raise fail(f"unknown tier '{tier_name}' (tiers: {', '.join(model.tiers)})", "hedging", tier_name)
    for provider_name in model.simulator:
        if provider_name not in model.providers:
            raise fail(f"unknown provider '{provider_name}'", "simulator", provider_name)

    judge_chain = parse_entries(model.judge.chain, "judge", "chain") if model.judge else ()
    splits: dict[tuple[str, str], TrafficSplit] = {}
    for tier_name, by_task in model.splits.items():
        if tier_name not in model.tiers:
            raise fail(f"unknown tier '{tier_name}' (tiers: {', '.join(model.tiers)})", "splits", tier_name)
        for task_name, arms_cfg in by_task.items():
            if task_name not in model.tasks:
                raise fail(f"unknown task '{task_name}' (tasks: {', '.join(model.tasks)})",
                           "splits", tier_name, task_name)
            if len(arms_cfg) < 2:
                raise fail("a split needs at least two arms", "splits", tier_name, task_name)
            arms = []
            for arm_name, arm in arms_cfg.items():
                loc = ("splits", tier_name, task_name, arm_name)
                if not _NAME.match(arm_name):
                    raise fail("names are lower-case letters, digits, '-' and '_'", *loc)
                if (arm.head is None) == (arm.chain is None):
                    raise fail("give exactly one of 'head' (a new first entry) or 'chain' (a whole chain)", *loc)
                if arm.head is not None:
                    head = parse_entries([arm.head], *loc, "head")[0]
                    chain = (head, *(e for e in chains[(tier_name, task_name)] if e != head))
                else:
                    chain = parse_entries(arm.chain or [], *loc, "chain")
                arms.append(SplitArm(name=arm_name, weight=arm.weight, chain=chain))
            splits[(tier_name, task_name)] = TrafficSplit(tier=tier_name, task=task_name, arms=tuple(arms))

    return RoutingPolicy(name=model.name or Path(source).stem, description=model.description,
                         source=source, text=text, model=model, chains=chains, splits=splits,
                         judge_chain=judge_chain)


def _placeholders(template: str, source: str, text: str, loc: tuple[str, ...]) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        raise ConfigError(f"bad template ({e}); write a literal brace as {{{{ or }}}}", source=source,
                          key=".".join(loc), line=locate(text, loc)) from None


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")


def _split_dotted(key: str) -> tuple[str, ...]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([A-Za-z0-9_\-]+)', key)
    return tuple(a or b or c for a, b, c in parts)


def locate(text: str, loc: tuple[str, ...]) -> int | None:
    """The 1-based line where the dotted key ``loc`` is defined, or its nearest parent."""
    want = tuple(p for p in loc if not p.isdigit())
    best_line, best_len = None, 0
    first_inside: int | None = None
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_dotted(header.group(1))
            path = table
        else:
            key = _KEY.match(line)
            if not key:
                continue
            path = table + _split_dotted(key.group(1))
        common = 0
        for a, b in zip(path, want):
            if a != b:
                break
            common += 1
        if common == len(path) and common > best_len:
            best_line, best_len = number, common
            if common == len(want):
                return number
        if common == len(want) and first_inside is None:
            first_inside = number  # e.g. [splits.pro.idea.a] for the key splits.pro.idea
    return first_inside if first_inside is not None and best_len < len(want) else best_line
