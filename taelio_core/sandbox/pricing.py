"""Prices for the sandbox: the live ``Pricer``, with a fast path for tiered prices.

Some models (Gemini 2.5 Pro, for one) have "cliff" prices: one rate for
prompts up to a threshold, another above. ``genai-prices`` computes those
with a general engine that costs about a millisecond per call, which in a
100,000-request run is most of the time. Below the first tier's threshold the
price is simply the base rate, which is what every simulated request pays
unless its prompt is enormous; above it, we defer to the catalogue as live
does. Flat prices and the hour key are cached too. The results are
identical to the live ``Pricer``'s (a test checks it).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from taelio_core.generation import Usage
from taelio_core.pricing import CATALOGUE, Price, Pricer, _apply, _model_price, catalogue_provider

__all__ = ["SandboxPricer"]


class SandboxPricer(Pricer):
    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self._hours: dict[tuple[int, int, int, int], str] = {}
        self._base: dict[tuple[str, str, str], tuple[Decimal, Decimal, Decimal | None, int] | None] = {}

    def _base_rates(self, provider: str, model: str, hour: str) -> tuple[Decimal, Decimal, Decimal | None, int] | None:
        """(input, output, cached input, first tier start) of a catalogue price, else None (override, unknown)."""
        key = (provider, model, hour)
        if key not in self._base:
            provider_id = catalogue_provider(self.kinds.get(provider, provider))
            price = _model_price(provider_id, model, hour) if provider_id else None
            rates = None
            if price is not None and f"{provider}:{model}" not in self.overrides:
                parts = (price.input_mtok, price.output_mtok, price.cache_read_mtok)
                tiered = [p for p in parts if p is not None and not isinstance(p, Decimal | int)]
                if all(hasattr(p, "base") and hasattr(p, "tiers") for p in tiered):
                    start = min((t.start for p in tiered for t in p.tiers), default=1 << 62)
                    inp, out, cached = (None if p is None else Decimal(getattr(p, "base", p)) for p in parts)
                    if inp is not None and out is not None:
                        rates = (inp, out, cached, start)
            self._base[key] = rates
        return self._base[key]

    def price(self, provider: str, model: str, usage: Usage, at: datetime) -> Price:
        stamp = (at.year, at.month, at.day, at.hour)
        hour = self._hours.get(stamp)
        if hour is None:
            hour = self._hours[stamp] = at.strftime("%Y-%m-%dT%H:00:00+00:00")
        rates = self._base_rates(provider, model, hour)
        if rates is not None and usage.input_tokens <= rates[3]:
            return Price(cost_usd=_apply(rates[0], rates[1], rates[2], usage), source=CATALOGUE)
        return super().price(provider, model, usage, at)
