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

from genai_prices import Usage as PriceUsage
from genai_prices import data_snapshot

from taelio_core.generation import Usage
from taelio_core.policy import PriceOverride

__all__ = ["CATALOGUE", "Price", "Pricer", "catalogue_provider"]

CATALOGUE = f"genai-prices {version('genai-prices')}"
MTOK = Decimal(1_000_000)

# Policy provider kinds -> genai-prices provider ids.
_CATALOGUE_IDS = {"gemini": "google", "openai": "openai", "anthropic": "anthropic"}


def catalogue_provider(kind: str) -> str | None:
    return _CATALOGUE_IDS.get(kind)


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
    snapshot = data_snapshot.get_snapshot()
    try:
        _provider, info = snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    return info.get_prices(datetime.fromisoformat(day))


class Pricer:
    """Prices attempts. ``kinds`` maps a policy's provider names to their kinds."""

    def __init__(self, overrides: dict[str, PriceOverride] | None = None,
                 kinds: dict[str, str] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.kinds = dict(kinds or {})

    def price(self, provider: str, model: str, usage: Usage, at: datetime) -> Price:
        override = self.overrides.get(f"{provider}:{model}")
        if override is not None:
            return Price(cost_usd=_apply(override.input_per_mtok, override.output_per_mtok,
                                         override.cached_input_per_mtok, usage), source="override")
        provider_id = catalogue_provider(self.kinds.get(provider, provider))
        if provider_id is None:
            return UNPRICED
        model_price = _model_price(provider_id, model, at.strftime("%Y-%m-%dT%H:00:00+00:00"))
        if model_price is None:
            return UNPRICED
        if getattr(model_price, "requests_kcount", None) is None and model_price.input_mtok is not None \
                and model_price.output_mtok is not None:
            # Token prices only: the arithmetic genai-prices does (cliff tiers on total input tokens),
            # without its ~80 us of per-call overhead. Tests compare both on every built-in model.
            n = usage.input_tokens
            cached = model_price.cache_read_mtok
            return Price(cost_usd=_apply(_rate(model_price.input_mtok, n), _rate(model_price.output_mtok, n),
                                         None if cached is None else _rate(cached, n), usage), source=CATALOGUE)
        result = model_price.calc_price(PriceUsage(input_tokens=usage.input_tokens,
                                                   output_tokens=usage.output_tokens,
                                                   cache_read_tokens=usage.cached_tokens or None))
        return Price(cost_usd=Decimal(result["total_price"]), source=CATALOGUE)

    def unit_prices(self, provider: str, model: str, at: datetime) -> tuple[Decimal, Decimal] | None:
        """(input, output) USD per million tokens, for worst-case budget checks."""
        override = self.overrides.get(f"{provider}:{model}")
        if override is not None:
            return override.input_per_mtok, override.output_per_mtok
        provider_id = catalogue_provider(self.kinds.get(provider, provider))
        model_price = _model_price(provider_id, model, at.strftime("%Y-%m-%dT%H:00:00+00:00")) if provider_id else None
        if model_price is None:
            return None
        inp, out = model_price.input_mtok, model_price.output_mtok
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
