"""Issue 12 part 6: Costs, Health and ``taelio health`` show the same budget spend, by one rule.

Before, the Costs page summed the sidebar's sources (demo data included) and
``taelio health`` (the guard that enforces budgets) summed real calls of
every source: "pro $2.47 of $500" on one, "$0.00" on the other. Now both read
``budget_burn.budget_spend``: live, experiment and test traffic counts, demo
data and sandbox runs never do.
"""
from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import duckdb

from taelio_core.analytics.budget_burn import month_bounds
from taelio_core.calllog.sources import BILLED_SOURCES
from taelio_core.cli import main
from taelio_core.formatting import money
from tests.app.conftest import make_app
from tests.seeded_log import build_results, clock_now, seed_log


def _counted(db: Path, tier: str) -> Decimal:
    start, _ = month_bounds(clock_now())
    con = duckdb.connect(str(db), read_only=True)
    try:
        total = con.execute(
            f"SELECT sum(cost_usd) FROM attempts WHERE tier = ? AND ts >= ? AND NOT simulated "
            f"AND source IN ({', '.join('?' for _ in BILLED_SOURCES)})", [tier, start, *BILLED_SOURCES]).fetchone()[0]
    finally:
        con.close()
    return Decimal(str(total or 0))


def test_costs_health_and_taelio_health_show_the_same_budget_spend(tmp_path: Path, monkeypatch, capsys):
    now = clock_now()
    live = build_results(now=now, days=2, n=120, source="live")
    demo = [replace(r, request_id=f"demo-{i:06d}", source="demo",
                    attempts=tuple(replace(a, cost_usd=Decimal("3")) for a in r.attempts))
            for i, r in enumerate(build_results(now=now, days=2, n=40, seed=9))]
    db = tmp_path / "log.duckdb"
    seed_log(db, live + demo, now=now)
    monkeypatch.setenv("DATABASE_URL", str(db))
    monkeypatch.setenv("TAELIO_MODE", "live")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used-000000")   # live mode: nothing is called
    want = _counted(db, "pro")
    assert want > 0

    capsys.readouterr()
    assert main(["health", "--json", "--history", "0"]) == 0
    cli = {(b["scope"], b["name"], b["period"]): b for b in json.loads(capsys.readouterr().out)["budgets"]}
    assert Decimal(str(cli[("tier", "pro", "monthly")]["spent_usd"])) == want.quantize(Decimal("1e-10"))

    at = make_app()
    at.run()
    at.switch_page("pages/costs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    cards = [m.value for m in at.markdown if m.value.startswith("**pro** · ")]
    assert cards == [f"**pro** · {money(want)} of {money(500)}"]
    assert any("demo data, sandbox runs and simulated calls never count" in c.value for c in at.caption)

    at.switch_page("pages/health.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "budget" in d.value.columns)
    row = table[table["budget"] == "tier pro (monthly)"].iloc[0]
    assert row["spent"] == money(want)
