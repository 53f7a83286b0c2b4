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
