"""One money format for the dashboard and the CLI."""
from __future__ import annotations

from decimal import Decimal

import pytest

from taelio_core.formatting import money


@pytest.mark.parametrize(("value", "shown"), [
    (Decimal("82.1903"), "$82.19"),
    (500, "$500.00"),
    (12345.678, "$12,345.68"),
    (0.9996, "$1.00"),              # rounds to a dollar: shown in cents
    (0.8789, "$0.879"),             # under a dollar: three significant digits
    (0.5, "$0.50"),                 # never fewer than two decimals
    (Decimal("0.007028"), "$0.00703"),
    (0.000038, "$0.000038"),        # no exponent, however small
    (0, "$0.00"),
    (-3.2, "-$3.20"),
])
def test_money_reads_the_same_everywhere(value, shown):
    assert money(value) == shown


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_a_missing_price_is_never_zero_dollars(missing):
    assert money(missing) == "unpriced"
    assert money(missing, unpriced="–") == "–"


def test_percentages_and_latency_have_one_format_each() -> None:
    from taelio_core.formatting import metric, milliseconds, percent

    assert percent(0.923) == "92.3 %" and percent(0.9166) == "91.7 %" and percent(None) == "–"
    assert milliseconds(1483.0158) == "1483 ms" and milliseconds(float("nan")) == "–"
    assert metric("availability", 0.5) == "50.0 %" and metric("fallback_rate", 0.015, signed=True) == "+1.5 pp"
    assert metric("budget_burn_pct", 12.5) == "12.5 %" and metric("err_timeout", 0.01) == "1.0 %"
    assert metric("cost_usd", 0.00014) == "$0.00014" and metric("cost_usd", 0.02, signed=True) == "+$0.02"
    assert metric("cost_usd", -0.02, signed=True) == "-$0.02"
    assert metric("p50_ms", 1483.0158) == "1483 ms" and metric("p50_ms", 2.4, signed=True) == "+2 ms"
    assert metric("requests", 12000) == "12,000"


def test_the_simulate_table_prints_money_percentages_and_latency_in_the_one_format(capsys) -> None:
    from taelio_core.cli import main

    assert main(["--policy", "current", "simulate", "--requests", "100", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "cost $" not in out and "$0." in out and " ms" in out and " %" in out
    assert not any(len(part) > 6 and part.replace(".", "").isdigit() and "." in part for part in out.split()), out
