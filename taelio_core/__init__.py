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
    from taelio_core.config.policy import RoutingPolicy
    from taelio_core.config.policy_parser import load_policy
    from taelio_core.routing.inputs import Inputs
    from taelio_core.routing.router import Router
    from taelio_core.routing.story_flow import StoryResult
    from taelio_core.routing.trace import Attempt, GenerationResult, RouteEntry
    from taelio_core.wiring import Taelio

__all__ = ["AllProvidersFailed", "Attempt", "ConfigError", "GenerationResult", "InputError", "Inputs",
           "RouteEntry", "Router", "RoutingPolicy", "StoryResult", "TaelioError", "Taelio", "load_policy"]

_LAZY = {"Taelio": "taelio_core.wiring", "RoutingPolicy": "taelio_core.config.policy",
         "load_policy": "taelio_core.config.policy_parser", "Router": "taelio_core.routing.router",
         "StoryResult": "taelio_core.routing.story_flow", "Inputs": "taelio_core.routing.inputs",
         "Attempt": "taelio_core.routing.trace", "GenerationResult": "taelio_core.routing.trace",
         "RouteEntry": "taelio_core.routing.trace"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taelio_core' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
