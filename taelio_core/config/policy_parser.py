"""Reading a policy: find the file, parse its TOML, validate it, and check what refers to what.

Every mistake is one ``ConfigError`` naming the file, the key and the line, e.g.::

    policies/mine.toml:61, key 'routes.pro.idea': unknown provider 'opnai' (known: anthropic, gemini, openai)
"""
from __future__ import annotations

import os
import re
import string
import tomllib
from pathlib import Path

from pydantic import ValidationError

from taelio_core.config.policy import ChainEntry, RoutingPolicy
from taelio_core.config.policy_lines import locate
from taelio_core.config.policy_schema import _PolicyModel
from taelio_core.config.traffic_split import SplitArm, TrafficSplit
from taelio_core.errors import ConfigError
from taelio_core.providers.registry import find_kind, kind_names

__all__ = ["BUILTIN_POLICIES", "load_policy", "parse_policy", "policy_path"]

BUILTIN_DIR = Path(__file__).parent.parent / "policies"
BUILTIN_POLICIES = {"seed": BUILTIN_DIR / "seed.toml", "current": BUILTIN_DIR / "current.toml"}
BASE_PLACEHOLDERS = frozenset({"prompt", "genre", "tone"})
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


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

