"""Provider adapters: one module per SDK, plus the simulator and a function-driven fake.

``build_providers`` turns a policy's ``[providers]`` table into objects. In
demo mode the simulator stands in for every provider, under that provider's
name, so routing, pricing and logging behave as they would live.
"""
from __future__ import annotations

from importlib import import_module

from taelio_core.policy import RoutingPolicy, SimulatorConfig
from taelio_core.providers.base import Availability, Provider
from taelio_core.providers.simulated import SimProfile, SimulatedProvider
from taelio_core.settings import KEY_ENV, Settings

__all__ = ["ADAPTERS", "Availability", "Provider", "SimProfile", "SimulatedProvider", "SIM_TIMEOUT_WAIT_S",
           "build_providers", "sim_profile"]

# A simulated timeout built here (demo mode, or a simulated provider in the policy) fails after this long
# instead of the attempt's whole timeout (30 s by default): the trace still shows a timeout and the
# fallback, without making the person at the Generate page wait half a minute for it.
SIM_TIMEOUT_WAIT_S = 2.0

# kind -> "module:Class", imported only when a policy uses it
ADAPTERS = {
    "openai": "taelio_core.providers.openai:OpenAIProvider",
    "anthropic": "taelio_core.providers.anthropic:AnthropicProvider",
    "gemini": "taelio_core.providers.gemini:GeminiProvider",
    "openai_compatible": "taelio_core.providers.openai_compatible:OpenAICompatibleProvider",
}


def sim_profile(cfg: SimulatorConfig | None) -> SimProfile:
    if cfg is None:
        return SimProfile()
    return SimProfile(latency_ms=cfg.latency_ms, latency_sigma=cfg.latency_sigma, ttft_ms=cfg.ttft_ms,
                      error_rates=dict(cfg.error_rates), retry_after_s=cfg.retry_after_s,
                      output_tokens=cfg.output_tokens)


def build_providers(policy: RoutingPolicy, settings: Settings, *, mode: str | None = None,
                    seed: int | None = None, speed: float = 1.0) -> dict[str, Provider]:
    """Provider objects for every provider the policy names.

    ``mode='demo'`` puts the simulator in place of each one; ``speed`` scales
    its delays (0 makes it instant, for demo data and tests), and a simulated
    timeout gives up after ``SIM_TIMEOUT_WAIT_S`` (before scaling).
    """
    mode = mode or settings.mode
    providers: dict[str, Provider] = {}
    for i, (name, cfg) in enumerate(policy.providers.items()):
        if mode == "demo" or cfg.kind == "simulated":
            base = sim_profile(policy.model.simulator.get(name))
            profile = SimProfile(**{**base.__dict__, "speed": speed, "timeout_wait_s": SIM_TIMEOUT_WAIT_S})
            providers[name] = SimulatedProvider(name=name, profile=profile,
                                                seed=(seed if seed is not None else 0) * 1000 + i)
            continue
        module_name, _, class_name = ADAPTERS[cfg.kind].partition(":")
        cls = getattr(import_module(module_name), class_name)
        if cfg.kind == "openai_compatible":
            key_env = cfg.api_key_env or ""
            key = settings.key((key_env,)) if key_env else None
            providers[name] = cls(name=name, api_key=key.get() if key else None, base_url=cfg.base_url,
                                  key_required=bool(key_env), key_env=key_env)
            continue
        key = settings.key_for(cfg.kind, cfg.api_key_env)
        key_env = cfg.api_key_env or " or ".join(KEY_ENV[cfg.kind])
        providers[name] = cls(name=name, api_key=key.get() if key else None,
                              base_url=cfg.base_url or settings.base_url_for(cfg.kind), key_env=key_env)
    return providers
