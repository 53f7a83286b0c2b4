"""Everything a caller needs, wired once: policy, settings, providers, router, call log.

The CLI and the dashboard both start from ``Taelio.open()``, so they agree on
which policy, keys, mode and log file are in force.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from taelio_core.calllog import CallLog, open_call_log
from taelio_core.clock import Clock
from taelio_core.policy import RoutingPolicy, load_policy
from taelio_core.providers import build_providers
from taelio_core.providers.base import Provider
from taelio_core.router import Router
from taelio_core.settings import Settings, load_settings

__all__ = ["Taelio"]


@dataclass(kw_only=True)
class Taelio:
    policy: RoutingPolicy
    settings: Settings
    providers: dict[str, Provider]
    router: Router
    log: CallLog | None
    mode: str

    @classmethod
    def open(cls, *, policy: str | os.PathLike[str] | RoutingPolicy | None = None,
             settings: Settings | None = None, database: str | Path | None = None, log: bool = True,
             mode: str | None = None, clock: Clock | None = None) -> Taelio:
        settings = settings or load_settings()
        policy_obj = policy if isinstance(policy, RoutingPolicy) else load_policy(policy)
        mode = mode or settings.mode
        providers = build_providers(policy_obj, settings, mode=mode)
        call_log = open_call_log(settings, str(database) if database else None) if log else None
        router = Router(policy_obj, providers, sink=call_log, clock=clock,
                        source="demo" if mode == "demo" else "live")
        return cls(policy=policy_obj, settings=settings, providers=providers, router=router, log=call_log,
                   mode=mode)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
