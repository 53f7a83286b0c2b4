"""Taelio's engine: routes generation requests across LLM providers, prices and logs them.

Start with ``Taelio.open()``; see the README for configuration.
"""
from __future__ import annotations

from taelio_core.engine import Taelio
from taelio_core.errors import AllProvidersFailed, ConfigError, InputError, TaelioError
from taelio_core.policy import RoutingPolicy, load_policy
from taelio_core.router import Router
from taelio_core.story_flow import StoryResult
from taelio_core.trace import Attempt, GenerationResult, Inputs, RouteEntry

__all__ = ["AllProvidersFailed", "Attempt", "ConfigError", "GenerationResult", "InputError", "Inputs",
           "RouteEntry", "Router", "RoutingPolicy", "StoryResult", "TaelioError", "Taelio", "load_policy"]
