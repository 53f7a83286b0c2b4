"""Provider adapters: one module per SDK, plus the simulator and a function-driven fake.

``build_providers`` turns a policy's ``[providers]`` table into objects. In
demo mode the simulator stands in for every provider, under that provider's
name, so routing, pricing and logging behave as they would live.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from taelio_core.providers.base import Availability, Provider
from taelio_core.providers.registry import ProviderKind, find_kind, register_provider
from taelio_core.providers.simulated import SimProfile, SimulatedProvider, profile_from_config

if TYPE_CHECKING:  # the policy and settings import this package's registry: no import cycle at run time
    from taelio_core.config.policy import RoutingPolicy
    from taelio_core.config.settings import Settings

__all__ = ["Availability", "Provider", "ProviderKind", "SimProfile", "SimulatedProvider", "SIM_TIMEOUT_WAIT_S",
           "build_providers", "profile_from_config", "register_provider"]

# A simulated timeout built here (demo mode, or a simulated provider in the policy) fails after this long
# instead of the attempt's whole timeout (30 s by default): the trace still shows a timeout and the
# fallback, without making the person at the Generate page wait half a minute for it.
SIM_TIMEOUT_WAIT_S = 2.0


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
            profile = replace(profile_from_config(policy.model.simulator.get(name)), speed=speed,
                              timeout_wait_s=SIM_TIMEOUT_WAIT_S)
            providers[name] = SimulatedProvider(name=name, profile=profile,
                                                seed=(seed if seed is not None else 0) * 1000 + i)
            continue
        kind = find_kind(cfg.kind)
        if kind is None:  # the policy parser checks kinds; a policy built by hand may not have been parsed
            raise ValueError(f"provider '{name}' has kind '{cfg.kind}', which no module registers")
        names = kind.key_names(cfg.api_key_env)
        key = settings.key(names) if names else None
        providers[name] = kind.load()(name=name, api_key=key.get() if key else None,
                                      base_url=cfg.base_url or settings.base_url_for(cfg.kind),
                                      key_required=bool(names), key_env=" or ".join(names))
    return providers
