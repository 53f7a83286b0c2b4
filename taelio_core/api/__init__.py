"""Taelio's HTTP API (``taelio serve``): the seed's endpoints, one-task generation, SSE, an OpenAI-compatible
surface, JWT tiers, per-user limits, metrics.

A shell over ``taelio_core``, like the CLI: the rest of the core never imports
FastAPI (``tests/api/test_api_boundaries.py`` checks it). Reference: ``docs/api.md``.
"""
from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from taelio_core.api.app import create_app
        return create_app
    raise AttributeError(name)
