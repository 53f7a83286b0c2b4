"""A policy compiled once into decision tables: what every request of a tier x task reads, ready to use.

Why: the live router and the Sandbox ask the same questions thousands of
times a second (which entries, which breaker keys, which budgets and caps,
what this model costs, what the prompt is). ``compile_plan`` answers them
once when a policy loads; a new policy gives a new ``PolicyPlan`` object,
swapped in whole, and a request holds the plan it started with to its end,
so no request sees parts of two plans.

* ``PolicyPlan.entries``: every provider:model of the policy, by integer
  index, with its breaker keys (indices into ``keys``) and its bound price;
* ``PolicyPlan.route(tier, task)``: the ``RoutePlan`` (entry indices, the
  settings, the rendered system prompt and the user template, the deadline,
  hedging if the tier has it, the budget rules per entry);
* ``EntryPrice``: a model's prices bound per hour of the catalogue, as integer
  pico-dollars per token, so pricing an attempt is integer arithmetic.
"""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from taelio_core.config.policy import ChainEntry, RoutingPolicy
from taelio_core.config.policy_schema import Budgets
from taelio_core.config.pricing import CATALOGUE, MTOK, Pricer
from taelio_core.guards.resilience import BreakerConfig, HedgeConfig, ResilienceConfig
from taelio_core.routing.decision_state import PICO, Key, from_decimal
from taelio_core.routing.generation import GenerationSettings

__all__ = ["BudgetRule", "BudgetTable", "budget_keys", "EntryPlan", "EntryPrice", "PolicyPlan", "RoutePlan", "compile_plan", "period_labels"]

_PER_TOKEN = PICO // 1_000_000       # USD per million tokens -> pico-dollars per token
_NO_CARD = object()


def _pico_rate(price: object) -> int | None:
    """A price per million tokens as whole pico-dollars per token, or None if it is finer than that."""
    scaled = Decimal(price) * _PER_TOKEN  # type: ignore[arg-type]
    return int(scaled) if scaled == scaled.to_integral_value() else None


def _tiers(price: object) -> tuple[int | None, tuple[tuple[int, int | None], ...]]:
    tiers = getattr(price, "tiers", None)
    if tiers is None:
        return _pico_rate(price), ()
    return _pico_rate(price.base), tuple((t.start, _pico_rate(t.price)) for t in reversed(tiers))  # type: ignore[attr-defined]


def _rate(base: int | None, tiers: tuple[tuple[int, int | None], ...], n: int) -> int | None:
    for start, rate in tiers:
        if n > start:
            return rate
    return base


class EntryPrice:
    """One model's prices, bound when the plan compiles and looked up once per hour of the catalogue."""

    __slots__ = ("provider", "model", "_pricer", "_cards", "_units")

    def __init__(self, pricer: Pricer, provider: str, model: str) -> None:
        self.provider, self.model, self._pricer = provider, model, pricer
        self._cards: dict[int, object] = {}
        self._units: dict[int, tuple[int, int] | None] = {}

    def _card(self, hour: int) -> object:
        plan = self._pricer.plan(self.provider, self.model, datetime.fromtimestamp(hour * 3600, UTC))
        card = None
        if plan is not None:
            kind, source = plan
            if kind == "override":
                inp, out, cached = (_pico_rate(source.input_per_mtok), _pico_rate(source.output_per_mtok),  # type: ignore[attr-defined]
                                    source.cached_input_per_mtok)  # type: ignore[attr-defined]
                cached_rate = inp if cached is None else _pico_rate(cached)
                card = ("override", (inp, ()), (out, ()), (cached_rate, ()))
            elif kind == "tokens":
                inp, out = _tiers(source.input_mtok), _tiers(source.output_mtok)  # type: ignore[attr-defined]
                cached = source.cache_read_mtok  # type: ignore[attr-defined]
                card = (CATALOGUE, inp, out, inp if cached is None else _tiers(cached))
            else:
                card = ("calculator",)
        self._cards[hour] = card
        return card

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int, at_s: float) -> tuple[int | None, str | None]:
        """(pico-dollars or None when unpriced, the price's source) of one attempt started at ``at_s``."""
        hour = int(at_s // 3600)
        card = self._cards.get(hour, _NO_CARD)
        if card is _NO_CARD:
            card = self._card(hour)
        if card is None:
            return None, None
        if len(card) == 4:  # type: ignore[arg-type]
            source, (ib, it), (ob, ot), (cb, ct) = card  # type: ignore[misc]
            n = input_tokens
            inp = _rate(ib, it, n) if it else ib
            out = _rate(ob, ot, n) if ot else ob
            cached = _rate(cb, ct, n) if ct else cb
            if inp is not None and out is not None and cached is not None:
                return (input_tokens - cached_tokens) * inp + cached_tokens * cached + output_tokens * out, source
        # A calculator price, or one finer than a pico-dollar per token: the catalogue's own arithmetic.
        from taelio_core.routing.generation import Usage
        price = self._pricer.price(self.provider, self.model, Usage(input_tokens=input_tokens,
                                   output_tokens=output_tokens, cached_tokens=cached_tokens),
                                   datetime.fromtimestamp(at_s, UTC))
        return (None if price.cost_usd is None else from_decimal(price.cost_usd)), price.source

    def worst_case(self, input_tokens: int, output_tokens: int, at_s: float) -> int | None:
        """The most ``input_tokens`` in and ``output_tokens`` out can cost (top price tier), pico-dollars."""
        hour = int(at_s // 3600)
        units = self._units.get(hour, _NO_CARD)  # type: ignore[arg-type]
        if units is _NO_CARD:
            prices = self._pricer.unit_prices(self.provider, self.model, datetime.fromtimestamp(hour * 3600, UTC))
            units = None if prices is None else (prices[0], prices[1])  # type: ignore[assignment]
            self._units[hour] = units  # type: ignore[assignment]
        if units is None:
            return None
        pin, pout = units  # type: ignore[misc]
        rin, rout = _pico_rate(pin), _pico_rate(pout)
        if rin is not None and rout is not None:
            return input_tokens * rin + output_tokens * rout
        return from_decimal((input_tokens * Decimal(pin) + output_tokens * Decimal(pout)) / MTOK, up=True)


class EntryPlan:
    """One provider:model of the policy: its index, breaker keys (indices into ``PolicyPlan.keys``), price."""

    __slots__ = ("index", "entry", "provider", "model", "ref", "provider_key", "entry_key", "price")

    def __init__(self, index: int, entry: ChainEntry, provider_key: int, entry_key: int, price: EntryPrice) -> None:
        self.index, self.entry, self.provider, self.model, self.ref = (
            index, entry, entry.provider, entry.model, entry.ref)
        self.provider_key, self.entry_key, self.price = provider_key, entry_key, price


class BudgetRule:
    """A budget an attempt counts against: (scope, name, period), its limit (pico-dollars, and the policy's
    Decimal for the edge) and whether it is hard (a cap)."""

    __slots__ = ("scope", "name", "period", "cap", "limit", "hard")

    def __init__(self, scope: str, name: str, period: str, limit: Decimal, hard: bool) -> None:
        self.scope, self.name, self.period, self.hard = scope, name, period, hard
        self.limit, self.cap = limit, from_decimal(limit)


class BudgetTable:
    """The policy's budgets as rules per (tier, provider), made once each."""

    __slots__ = ("budgets", "tiers", "providers", "_rules")

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.tiers, self.providers = frozenset(budgets.tier), frozenset(budgets.provider)
        self._rules: dict[tuple[str, str], tuple[BudgetRule, ...]] = {}

    def rules(self, tier: str, provider: str) -> tuple[BudgetRule, ...]:
        """The budgets an attempt of ``tier`` at ``provider`` counts against: the tier's, then the provider's."""
        found = self._rules.get((tier, provider))
        if found is not None:
            return found
        rules = []
        for scope, name, limit in (("tier", tier, self.budgets.tier.get(tier)),
                                   ("provider", provider, self.budgets.provider.get(provider))):
            if limit is None:
                continue
            for period in ("monthly", "daily"):
                amount = getattr(limit, period)
                if amount is not None:
                    rules.append(BudgetRule(scope, name, period, amount, limit.hard))
        found = self._rules[(tier, provider)] = tuple(rules)
        return found


class RoutePlan:
    """What every request of one tier x task reads."""

    __slots__ = ("tier", "task", "chain", "entries", "settings", "system", "user", "needs", "deadline_s",
                 "hedge", "budgets")

    def __init__(self, *, tier: str, task: str, chain: tuple[ChainEntry, ...], entries: tuple[int, ...],
                 settings: GenerationSettings, system: str, user: str, needs: str | None, deadline_s: float,
                 hedge: HedgeConfig | None, budgets: tuple[tuple[BudgetRule, ...], ...]) -> None:
        self.tier, self.task, self.chain, self.entries = tier, task, chain, entries
        self.settings, self.system, self.user, self.needs = settings, system, user, needs
        self.deadline_s, self.hedge, self.budgets = deadline_s, hedge, budgets


class PolicyPlan:
    """A policy's decision tables. Immutable once compiled: a new policy is a new plan."""

    __slots__ = ("policy", "name", "entries", "keys", "routes", "breakers", "resilience", "unhealthy_s",
                 "budgets", "_by_ref", "_extra", "_pricer")

    def __init__(self, policy: RoutingPolicy, pricer: Pricer) -> None:
        model = policy.model
        self.policy, self.name = policy, policy.name
        self._pricer, self._extra = pricer, {}
        self.breakers: BreakerConfig = model.breakers
        self.resilience: ResilienceConfig = model.resilience
        self.unhealthy_s = model.resilience.unhealthy_s
        keys: dict[str, int] = {}
        entries: list[EntryPlan] = []
        self._by_ref: dict[str, int] = {}
        chains = list(policy.chains.values()) + [policy.judge_chain]
        for chain in chains:
            for entry in chain:
                if entry.ref in self._by_ref:
                    continue
                pk = keys.setdefault(f"{entry.provider}:*", len(keys))
                ek = keys.setdefault(entry.ref, len(keys))
                self._by_ref[entry.ref] = len(entries)
                entries.append(EntryPlan(len(entries), entry, pk, ek, EntryPrice(pricer, entry.provider, entry.model)))
        self.entries = tuple(entries)
        self.keys = tuple(keys)
        self.budgets = BudgetTable(model.budgets)
        self.routes: dict[tuple[str, str], RoutePlan] = {}
        for (tier, task), chain in policy.chains.items():
            cfg = policy.task(task)
            self.routes[(tier, task)] = RoutePlan(
                tier=tier, task=task, chain=chain, entries=tuple(self._by_ref[e.ref] for e in chain),
                settings=policy.settings(tier, task), system=cfg.system, user=cfg.user, needs=cfg.needs,
                deadline_s=model.resilience.deadline_s, hedge=model.hedging.get(tier),
                budgets=tuple(self.budget_rules(tier, e.provider) for e in chain))

    def index(self, ref: str) -> int:
        return self._by_ref[ref]

    def price_of(self, entry: ChainEntry) -> EntryPrice:
        """The bound price of ``entry``; one outside every chain (an experiment's, a probe's) is bound now."""
        index = self._by_ref.get(entry.ref)
        if index is not None:
            return self.entries[index].price
        found = self._extra.get(entry.ref)
        if found is None:
            found = self._extra[entry.ref] = EntryPrice(self._pricer, entry.provider, entry.model)
        return found

    def route(self, tier: str, task: str) -> RoutePlan:
        return self.routes[(tier, task)]

    def budget_rules(self, tier: str, provider: str) -> tuple[BudgetRule, ...]:
        return self.budgets.rules(tier, provider)


def compile_plan(policy: RoutingPolicy, pricer: Pricer | None = None) -> PolicyPlan:
    kinds = {name: cfg.kind for name, cfg in policy.providers.items()}
    return PolicyPlan(policy, pricer or Pricer(policy.model.pricing, kinds))


@lru_cache(maxsize=64)
def _labels_of_day(day: int) -> tuple[str, str]:
    at = datetime.fromtimestamp(day * 86400, UTC)
    return f"{at.year:04d}-{at.month:02d}", f"{at.year:04d}-{at.month:02d}-{at.day:02d}"


def period_labels(at_s: float) -> tuple[str, str]:
    """(monthly, daily) budget period labels of the instant ``at_s`` (UTC)."""
    return _labels_of_day(int(at_s // 86400))


def budget_keys(rules: tuple[BudgetRule, ...], at_s: float) -> tuple[tuple[Key, ...], dict[Key, int]]:
    """The keys an attempt at ``at_s`` reserves on, and the caps of the hard ones."""
    monthly, daily = period_labels(at_s)
    keys, caps = [], {}
    for rule in rules:
        key = (rule.scope, rule.name, rule.period, monthly if rule.period == "monthly" else daily)
        keys.append(key)
        if rule.hard:
            caps[key] = rule.cap
    return tuple(keys), caps
