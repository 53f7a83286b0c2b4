"""Editing a routing policy as tables, and moving it in and out as TOML.

The Sandbox page edits policy B as two tables: the chains (one row per
tier x task, one column per position) and the settings (one row per dotted
key: defaults, budgets, and whatever breaker/retry/hedging/split sections the
policy schema has). Every edit is turned back into TOML and validated by
``policy.parse_policy``, so a mistake gets exactly the message the config
loader would give, and what is exported is ready for live use.
"""
from __future__ import annotations

import math
import tomllib
from decimal import Decimal
from typing import Any

import pandas as pd
import tomli_w

from taelio_core.config.policy import RoutingPolicy
from taelio_core.config.policy_parser import parse_policy
from taelio_core.config.policy_schema import _PolicyModel
from taelio_core.errors import ConfigError

__all__ = ["apply_chain_table", "apply_settings_table", "chain_table", "policy_from_toml", "policy_to_toml",
           "renamed", "settings_sections", "settings_table"]

# Sections edited elsewhere (chains, tasks) or not routing settings at all.
_STRUCTURE = {"name", "description", "providers", "tasks", "tiers", "routes", "pricing", "simulator"}


def policy_from_toml(text: str, *, source: str = "imported policy") -> RoutingPolicy:
    """Import: the same validation, and the same messages, as the config loader."""
    return parse_policy(text, source=source)


def policy_to_toml(policy: RoutingPolicy) -> str:
    """Export: the policy's TOML, ready to save as a file and use live."""
    return policy.text


def renamed(policy: RoutingPolicy, name: str, *, source: str = "policy B") -> RoutingPolicy:
    """``policy`` under another name (validated like any policy name), e.g. a candidate copied from A."""
    if name == policy.name:
        return policy
    raw = _raw(policy)
    raw["name"] = name
    return _rebuild(raw, policy, source)


def _raw(policy: RoutingPolicy) -> dict[str, Any]:
    return tomllib.loads(policy.text)


def _rebuild(raw: dict[str, Any], policy: RoutingPolicy, source: str) -> RoutingPolicy:
    text = f"# Exported from the Taelio sandbox (based on '{policy.name}').\n" + tomli_w.dumps(raw)
    return parse_policy(text, source=source)


# ---- chains ------------------------------------------------------------------------------------
def chain_table(policy: RoutingPolicy, *, spare: int = 1) -> pd.DataFrame:
    """One row per tier x task; columns ``entry_1..entry_N`` hold ``provider:model`` (N = longest chain + spare)."""
    width = max(len(chain) for chain in policy.chains.values()) + spare
    rows = []
    for tier in policy.tiers:
        for task in policy.tasks:
            refs = [e.ref for e in policy.chain(tier, task)]
            rows.append({"tier": tier, "task": task,
                         **{f"entry_{k + 1}": refs[k] if k < len(refs) else "" for k in range(width)}})
    return pd.DataFrame(rows)


def apply_chain_table(policy: RoutingPolicy, table: pd.DataFrame, *, source: str = "policy B") -> RoutingPolicy:
    """The policy with its routes replaced by ``table``'s; blank cells are skipped."""
    raw = _raw(policy)
    routes: dict[str, dict[str, list[str]]] = {}
    entry_columns = [c for c in table.columns if str(c).startswith("entry_")]
    for row in table.to_dict(orient="records"):
        tier, task = _cell(row.get("tier")), _cell(row.get("task"))
        if not tier and not task:
            continue
        if not tier or not task:
            raise ConfigError("every chain row needs both a tier and a task", source=source, key="routes")
        refs = [_cell(row.get(c)) for c in entry_columns]
        routes.setdefault(tier, {})[task] = [r for r in refs if r]
    raw["routes"] = routes
    return _rebuild(raw, policy, source)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


# ---- settings ----------------------------------------------------------------------------------
def settings_sections() -> list[str]:
    """The policy schema's setting sections (defaults, budgets, and breaker/retry/hedging/splits where they exist)."""
    return [name for name in _PolicyModel.model_fields if name not in _STRUCTURE]


def settings_table(policy: RoutingPolicy) -> pd.DataFrame:
    """One row per setting: ``setting`` (dotted key) and ``value`` (a TOML value; blank = not set)."""
    rows: list[dict[str, str]] = []
    for section in settings_sections():
        value = getattr(policy.model, section)
        dumped = value.model_dump() if hasattr(value, "model_dump") else value
        _flatten(section, dumped, rows)
    return pd.DataFrame(rows, columns=["setting", "value"])


def _flatten(prefix: str, value: Any, rows: list[dict[str, str]]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{_key(key)}", inner, rows)
        return
    if isinstance(value, dict):
        return  # an empty table: nothing to show
    rows.append({"setting": prefix, "value": "" if value is None else _literal(value)})


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'


def _literal(value: Any) -> str:
    """One TOML value on one line: arrays and tables inline (e.g. ``[[budgets.degrade]]`` rules)."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, dict):
        items = [f"{_key(str(k))} = {_literal(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).strip()[4:]


def apply_settings_table(policy: RoutingPolicy, table: pd.DataFrame, *, source: str = "policy B") -> RoutingPolicy:
    """The policy with every setting section replaced by the table's rows (blank values are left unset)."""
    raw = _raw(policy)
    for section in settings_sections():
        raw.pop(section, None)
    sections = set(settings_sections())
    for row in table.to_dict(orient="records"):
        setting, text = _cell(row.get("setting")), _cell(row.get("value"))
        if not setting or not text:
            continue
        try:
            parsed = tomllib.loads(f"{setting} = {text}")
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"'{text}' is not a TOML value ({str(e).split(' (at')[0]})", source=source,
                              key=setting) from None
        head = next(iter(parsed))
        if head not in sections:
            raise ConfigError(f"unknown setting section '{head}' (sections: {', '.join(sorted(sections))})",
                              source=source, key=setting)
        _merge(raw, parsed)
    return _rebuild(raw, policy, source)


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
