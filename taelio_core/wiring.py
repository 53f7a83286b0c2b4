"""Everything a caller needs, wired once: policy, settings, providers, router, call log, breakers, budgets.

The CLI and the dashboard both start from ``Taelio.open()``, so they agree on
which policy, keys, mode and log file are in force, and budgets start from
what the log says was already spent this month.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from taelio_core.calllog import CallLog, open_call_log
from taelio_core.config.policy import RoutingPolicy
from taelio_core.config.policy_parser import load_policy
from taelio_core.config.pricing import Pricer
from taelio_core.config.settings import Settings, load_settings
from taelio_core.guards.breakers import BreakerStore, CircuitBreakers
from taelio_core.guards.budget_ledger import LedgerBudgetStore, ledger_path
from taelio_core.guards.budget_store import BudgetStore
from taelio_core.guards.budgets import BudgetGuard, spend_from_log
from taelio_core.providers import build_providers
from taelio_core.providers.base import Provider
from taelio_core.routing.clock import Clock, SystemClock
from taelio_core.routing.router import Router

if TYPE_CHECKING:
    from taelio_core.guards.redis_link import RedisLink
    from taelio_core.monitoring.health import BreakerEventLog, HealthReport

__all__ = ["Taelio"]


@dataclass(kw_only=True)
class Taelio:
    policy: RoutingPolicy
    settings: Settings
    providers: dict[str, Provider]
    router: Router
    log: CallLog | None
    mode: str
    breaker_events: BreakerEventLog | None = None
    shared: RedisLink | None = None        # REDIS_URL: the link every shared store uses

    @classmethod
    def open(cls, *, policy: str | os.PathLike[str] | RoutingPolicy | None = None,
             settings: Settings | None = None, database: str | Path | None = None, log: bool = True,
             mode: str | None = None, clock: Clock | None = None,
             providers: dict[str, Provider] | None = None) -> Taelio:
        settings = settings or load_settings()
        policy_obj = policy if isinstance(policy, RoutingPolicy) else load_policy(policy)
        mode = mode or settings.mode
        providers = providers if providers is not None else build_providers(policy_obj, settings, mode=mode)
        call_log = open_call_log(settings, str(database) if database else None) if log else None
        clock = clock or SystemClock()
        pricer = Pricer(policy_obj.model.pricing, {n: c.kind for n, c in policy_obj.providers.items()})
        events = None
        if call_log is not None:
            from taelio_core.monitoring.health import BreakerEventLog  # pandas: only with a log (``routes`` has none)
            events = BreakerEventLog(call_log)
        link = _redis_link(settings.redis_url)
        breakers = CircuitBreakers(policy_obj.model.breakers, clock=clock,
                                   unhealthy_s=policy_obj.model.resilience.unhealthy_s, on_transition=events,
                                   store=_breaker_store(link))
        count_simulated = policy_obj.model.budgets.count_simulated
        spent = spend_from_log(call_log, clock.now(), count_simulated=count_simulated) if call_log else []
        now = clock.now()
        store = _budget_store(policy_obj, call_log, link)
        budgets = BudgetGuard(policy_obj, pricer, clock=clock, spent=spent, store=store,
                              seed_labels=[f"{now:%Y-%m}", f"{now:%Y-%m-%d}"],
                              simulated_providers=[n for n, p in providers.items() if p.simulated])
        if link is not None and call_log is not None and hasattr(store, "seed_source"):
            def seed_source() -> tuple[dict, list[str]]:   # what a Redis that lost its data is re-seeded with
                at = clock.now()
                return budgets.seed_of(spend_from_log(call_log, at, count_simulated=count_simulated),
                                       [f"{at:%Y-%m}", f"{at:%Y-%m-%d}"])
            store.seed_source = seed_source
        router = Router(policy_obj, providers, pricer=pricer, sink=call_log, clock=clock,
                        source="demo" if mode == "demo" else "live", breakers=breakers, budgets=budgets)
        return cls(policy=policy_obj, settings=settings, providers=providers, router=router, log=call_log,
                   mode=mode, breaker_events=events, shared=link)

    def health(self, *, history_limit: int = 200) -> HealthReport:
        """Breaker states (this process's, live), their logged history, and budgets: the Health page's data."""
        if self.breaker_events is not None:
            self.breaker_events.flush()
        from taelio_core.monitoring.health import health_report
        return health_report(policy=self.policy, now=self.router.clock.now(), call_log=self.log,
                             breakers=self.router.breakers, budgets=self.router.budgets,
                             history_limit=history_limit, shared=self.shared)

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()          # sends the settlements still queued
        if self.breaker_events is not None:
            self.breaker_events.close()
        if self.log is not None:
            self.log.close()


def _redis_link(url: str | None) -> RedisLink | None:
    if not url:
        return None
    from taelio_core.guards.redis_link import RedisLink   # redis-py loads only when REDIS_URL is set
    return RedisLink(url)


def _breaker_store(link: RedisLink | None) -> BreakerStore | None:
    if link is None:
        return None          # CircuitBreakers' in-process store
    from taelio_core.guards.redis_breakers import RedisBreakerStore
    return RedisBreakerStore(link)


def _budget_store(policy: RoutingPolicy, call_log: CallLog | None, link: RedisLink | None) -> BudgetStore | None:
    """With REDIS_URL, Redis (every process that sets it); else a ledger beside the log, shared by every process
    on this machine, when the policy sets budgets."""
    budgets = policy.model.budgets
    if not (budgets.tier or budgets.provider):
        return None          # BudgetGuard's in-process store
    if link is not None:
        from taelio_core.guards.redis_budgets import RedisBudgetStore
        return RedisBudgetStore(link, fail_closed=budgets.when_redis_down == "closed")
    path = getattr(call_log, "path", None)
    if path is None:
        return None
    return LedgerBudgetStore(ledger_path(Path(path)))
