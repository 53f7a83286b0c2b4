"""Taelio's engine: routes generation requests across LLM providers, prices and logs them.

Start with ``Taelio.open()``; see the README for configuration.

The names below are loaded on first use (PEP 562), so ``import taelio_core``
(and every ``taelio`` command, which imports it first) does not pay for
pandas, DuckDB and the provider SDKs until something needs them.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from taelio_core.errors import AllProvidersFailed, ConfigError, InputError, TaelioError

if TYPE_CHECKING:
    from taelio_core.engine import Taelio
    from taelio_core.policy import RoutingPolicy, load_policy
    from taelio_core.router import Router
    from taelio_core.story_flow import StoryResult
    from taelio_core.trace import Attempt, GenerationResult, Inputs, RouteEntry

__all__ = ["AllProvidersFailed", "Attempt", "ConfigError", "GenerationResult", "InputError", "Inputs",
           "RouteEntry", "Router", "RoutingPolicy", "StoryResult", "TaelioError", "Taelio", "load_policy"]

_LAZY = {"Taelio": "taelio_core.engine", "RoutingPolicy": "taelio_core.policy", "load_policy": "taelio_core.policy",
         "Router": "taelio_core.router", "StoryResult": "taelio_core.story_flow", "Attempt": "taelio_core.trace",
         "GenerationResult": "taelio_core.trace", "Inputs": "taelio_core.trace", "RouteEntry": "taelio_core.trace"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taelio_core' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
