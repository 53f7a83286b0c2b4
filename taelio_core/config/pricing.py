"""What each attempt cost, and where that price came from.

Prices come from the ``genai-prices`` catalogue at the call's timestamp,
from the tokens the provider reported (``input_tokens`` includes cached
ones). A policy's ``[pricing."provider:model"]`` table overrides the
catalogue, e.g. for a contract price. A model the catalogue does not know
gets ``cost=None`` and ``price_source=None``: unpriced, never $0.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from importlib.metadata import version

from taelio_core.config.policy_schema import PriceOverride
from taelio_core.providers.registry import find_kind
from taelio_core.routing.generation import Usage

__all__ = ["CATALOGUE", "Price", "Pricer", "catalogue_provider"]

CATALOGUE = f"genai-prices {version('genai-prices')}"
MTOK = Decimal(1_000_000)

def catalogue_provider(kind: str) -> str | None:
    """The kind's provider id in genai-prices, from the provider registry (None: the catalogue has none)."""
    found = find_kind(kind, discover=False)
    return found.catalogue_id if found else None


@dataclass(frozen=True, kw_only=True)
class Price:
    cost_usd: Decimal | None
    source: str | None  # "genai-prices 0.2.3", "override", or None when unpriced

    @property
    def priced(self) -> bool:
        return self.cost_usd is not None


UNPRICED = Price(cost_usd=None, source=None)


@lru_cache(maxsize=1024)
def _model_price(provider_id: str, model: str, day: str):  # noqa: ANN202 - genai-prices' ModelPrice
    from genai_prices import data_snapshot    # ~0.15 s (it loads httpx2): only when a price is looked up
    snapshot = data_snapshot.get_snapshot()
    try:
        _provider, info = snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    return info.get_prices(datetime.fromisoformat(day))


class Pricer:
    """Prices attempts. ``kinds`` maps a policy's provider names to their kinds.

    What applies to a provider:model in a given hour (an override, the
    catalogue's token prices, the catalogue's full calculator, or nothing) is
    looked up once and kept, so pricing an attempt is a dict lookup and a few
    ``Decimal`` operations on the request path.
    """

    def __init__(self, overrides: dict[str, PriceOverride] | None = None,
                 kinds: dict[str, str] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.kinds = dict(kinds or {})
        self._plans: dict[tuple[str, str, int, int, int, int], tuple[str, object] | None] = {}

    def plan(self, provider: str, model: str, at: datetime) -> tuple[str, object] | None:
        """What prices ``provider:model`` in ``at``'s hour: ("override", PriceOverride), ("tokens",
        ModelPrice) for token prices, ("calculator", ModelPrice), or None (unpriced)."""
        return self._plan(provider, model, at)

    def _plan(self, provider: str, model: str, at: datetime) -> tuple[str, object] | None:
        key = (provider, model, at.year, at.month, at.day, at.hour)
        try:
            return self._plans[key]
        except KeyError:
            pass
        override = self.overrides.get(f"{provider}:{model}")
        plan: tuple[str, object] | None
        if override is not None:
            plan = ("override", override)
        else:
            provider_id = catalogue_provider(self.kinds.get(provider, provider))
            model_price = None if provider_id is None else _model_price(
                provider_id, model, at.strftime("%Y-%m-%dT%H:00:00+00:00"))
            if model_price is None:
                plan = None
            elif getattr(model_price, "requests_kcount", None) is None and model_price.input_mtok is not None \
                    and model_price.output_mtok is not None:
                plan = ("tokens", model_price)
            else:
                plan = ("calculator", model_price)
        if len(self._plans) > 4096:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def price(self, provider: str, model: str, usage: Usage, at: datetime) -> Price:
        plan = self._plan(provider, model, at)
        if plan is None:
            return UNPRICED
        kind, source = plan
        if kind == "override":
            override: PriceOverride = source  # type: ignore[assignment]
            return Price(cost_usd=_apply(override.input_per_mtok, override.output_per_mtok,
                                         override.cached_input_per_mtok, usage), source="override")
        model_price = source
        if kind == "tokens":
            # Token prices only: the arithmetic genai-prices does (cliff tiers on total input tokens),
            # without its ~80 us of per-call overhead. Tests compare both on every built-in model.
            n = usage.input_tokens
            cached = model_price.cache_read_mtok  # type: ignore[attr-defined]
            return Price(cost_usd=_apply(_rate(model_price.input_mtok, n),  # type: ignore[attr-defined]
                                         _rate(model_price.output_mtok, n),  # type: ignore[attr-defined]
                                         None if cached is None else _rate(cached, n), usage), source=CATALOGUE)
        from genai_prices import Usage as PriceUsage
        result = model_price.calc_price(PriceUsage(  # type: ignore[attr-defined]
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cached_tokens or None))
        return Price(cost_usd=Decimal(result["total_price"]), source=CATALOGUE)

    def unit_prices(self, provider: str, model: str, at: datetime) -> tuple[Decimal, Decimal] | None:
        """(input, output) USD per million tokens, for worst-case budget checks."""
        plan = self._plan(provider, model, at)
        if plan is None:
            return None
        kind, source = plan
        if kind == "override":
            return source.input_per_mtok, source.output_per_mtok  # type: ignore[attr-defined]
        inp, out = source.input_mtok, source.output_mtok  # type: ignore[attr-defined]
        if isinstance(inp, Decimal | int) and isinstance(out, Decimal | int):
            return Decimal(inp), Decimal(out)
        # Tiered: take the highest tier as the worst case.
        def top(p: object) -> Decimal:
            tiers = getattr(p, "tiers", None)
            if tiers:
                return max(Decimal(t.price) for t in tiers)
            return Decimal(getattr(p, "base", 0))
        return top(inp), top(out)


def _rate(price: object, total_input_tokens: int) -> Decimal:
    tiers = getattr(price, "tiers", None)
    if tiers is None:
        return Decimal(price)  # type: ignore[arg-type]
    rate = price.base  # type: ignore[attr-defined]
    for tier in reversed(tiers):
        if total_input_tokens > tier.start:
            return tier.price
    return rate


def _apply(inp: Decimal, out: Decimal, cached: Decimal | None, usage: Usage) -> Decimal:
    uncached = usage.input_tokens - usage.cached_tokens
    cached_rate = inp if cached is None else cached
    return (uncached * inp + usage.cached_tokens * cached_rate + usage.output_tokens * out) / MTOK
