"""Analytics over a real DuckDB file seeded with hand-built traffic.

Each expected value is computed here in plain Python from the seeded
``GenerationResult`` values (or by a separate SQL statement), never by the
function under test.
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from taelio_core import analytics as A
from taelio_core.calllog import DuckDBCallLog
from taelio_core.config.policy_schema import Budgets
from tests.seeded_log import FIXED_NOW as NOW, build_results, seed_log

TODAY = NOW.date()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory):
    s = seed_log(tmp_path_factory.mktemp("log") / "calls.duckdb", now=NOW)
    log = DuckDBCallLog(s.path)
    yield s, log
    log.close()


def _in(f: A.Filters, ts: datetime) -> bool:
    return (f.start_ts is None or ts >= f.start_ts) and (f.end_ts is None or ts < f.end_ts)


def _attempts(results, f):
    return [(r, a) for r in results for a in r.attempts if _in(f, r.started_at)
            and (not f.tiers or r.tier in f.tiers) and (not f.providers or a.provider in f.providers)
            and (not f.sources or r.source in f.sources) and (not f.tasks or r.task in f.tasks)]


def test_filters_bind_values_as_parameters_never_in_the_sql_text():
    f = A.Filters(start=TODAY, end=TODAY, tiers=("pro'; DROP TABLE requests; --",), providers=("openai",))
    where, params = f.where()
    assert "DROP" not in where and where.count("?") == len(params) == 4
    assert f.previous() == A.Filters(start=TODAY - timedelta(days=1), end=TODAY - timedelta(days=1),
                                     tiers=f.tiers, providers=f.providers)


def test_headline_spend_matches_the_seeded_attempts_and_the_previous_period(seeded):
    s, log = seeded
    f = A.Filters.last_days(10, today=TODAY)
    h = A.headline(log, f)
    want = sum((a.cost_usd for _, a in _attempts(s.results, f) if a.cost_usd is not None), Decimal(0))
    assert h.spend_usd == want.quantize(Decimal("1e-10"))
    prev = f.previous()
    assert h.previous_spend_usd == sum((a.cost_usd for _, a in _attempts(s.results, prev) if a.cost_usd),
                                       Decimal(0)).quantize(Decimal("1e-10"))
    assert h.requests == sum(1 for r in s.results if _in(f, r.started_at))
    assert h.previous_requests == sum(1 for r in s.results if _in(prev, r.started_at))
    assert h.cost_per_request == h.spend_usd / h.requests
    unpriced = sum(1 for _, a in _attempts(s.results, f) if a.cost_usd is None and a.usage.output_tokens)
    assert h.unpriced_attempts == unpriced > 0
    assert h.unpriced_share == pytest.approx(unpriced / (unpriced + h.priced_attempts))
    assert h.input_tokens == sum(r.usage.input_tokens for r in s.results if _in(f, r.started_at))


def test_headline_on_an_empty_selection_says_nothing_is_priced_not_zero(seeded):
    _, log = seeded
    h = A.headline(log, A.Filters(start=TODAY + timedelta(days=400), end=TODAY + timedelta(days=401)))
    assert h.requests == 0 and h.spend_usd is None and h.cost_per_request is None and h.unpriced_share is None


def test_cost_by_provider_tier_sums_to_the_total_and_keeps_unpriced_groups_null(seeded):
    s, log = seeded
    f = A.Filters()
    df = A.cost_by_provider_tier(log, f, bucket="day")
    want: dict[tuple, Decimal] = defaultdict(Decimal)
    for r, a in _attempts(s.results, f):
        if a.cost_usd is not None:
            want[(a.provider, r.tier)] += a.cost_usd
    got = df.groupby(["provider", "tier"])["cost_usd"].sum(min_count=1)
    for key, value in want.items():
        assert got[key] == pytest.approx(float(value), rel=1e-9)
    # gemini-1.5-pro is unpriced in the seed: its successful attempts are counted, its cost is NULL, never 0.
    pro_gemini = df[(df.provider == "gemini") & (df.tier == "pro")]
    assert pro_gemini["unpriced"].sum() == sum(1 for r, a in _attempts(s.results, f)
                                               if a.model == "gemini-1.5-pro" and a.ok and r.tier == "pro")
    assert pro_gemini[pro_gemini.unpriced == pro_gemini.attempts]["cost_usd"].isna().all()


def test_usage_over_time_counts_requests_and_tokens_per_day(seeded):
    s, log = seeded
    f = A.Filters(tiers=("pro",))
    df = A.usage_over_time(log, f, bucket="day")
    by_day = Counter(r.started_at.date() for r in s.results if r.tier == "pro")
    assert {d.date(): n for d, n in zip(df.bucket, df.requests)} == dict(by_day)
    assert df.output_tokens.sum() == sum(r.usage.output_tokens for r in s.results if r.tier == "pro")


def test_latency_percentiles_per_provider_match_numpy(seeded):
    s, log = seeded
    df = A.latency_by_provider(log, A.Filters()).set_index("provider")
    for provider in ("gemini", "openai", "anthropic"):
        lat = [a.latency_ms for r in s.results for a in r.attempts if a.provider == provider and a.ok]
        assert df.loc[provider, "ok_attempts"] == len(lat)
        for q, col in ((50, "p50_ms"), (95, "p95_ms"), (99, "p99_ms")):
            # From the rollup's latency histogram: within its stated bin error of the exact percentile.
            assert df.loc[provider, col] == pytest.approx(np.percentile(lat, q), rel=A.QUANTILE_ERROR)


def test_fallback_rate_per_tier_matches_the_seeded_fallbacks(seeded):
    s, log = seeded
    df = A.fallback_rate(log, A.Filters()).set_index("tier")
    for tier in ("free", "pro", "admin"):
        mine = [r for r in s.results if r.tier == tier]
        fell = sum(1 for r in mine if any(not a.ok for a in r.attempts))
        assert (df.loc[tier, "requests"], df.loc[tier, "fallbacks"]) == (len(mine), fell)
        assert df.loc[tier, "rate"] == pytest.approx(fell / len(mine))
    over_time = A.fallback_rate_over_time(log, A.Filters(), bucket="week")
    assert over_time.groupby("tier")["fallbacks"].sum().to_dict() == df["fallbacks"].to_dict()


def test_errors_per_provider_and_type_and_over_time(seeded):
    s, log = seeded
    df = A.errors_by_type(log, A.Filters())
    want = Counter((a.provider, a.error_type) for r in s.results for a in r.attempts if a.error_type)
    assert {(p, e): n for p, e, n in zip(df.provider, df.error_type, df.errors)} == dict(want)
    total = Counter(a.provider for r in s.results for a in r.attempts)
    row = df.iloc[0]
    assert row.share_of_attempts == pytest.approx(row.errors / total[row.provider])
    over = A.errors_over_time(log, A.Filters(), bucket="day")
    assert over.groupby("error_type")["errors"].sum().to_dict() == dict(
        Counter(a.error_type for r in s.results for a in r.attempts if a.error_type))


def test_success_rate_per_provider_against_independent_sql(seeded):
    _, log = seeded
    df = A.success_by_provider(log, A.Filters(sources=("demo",))).set_index("provider")
    check = log.query("SELECT provider, avg(CASE WHEN status = 'ok' THEN 1.0 ELSE 0.0 END) AS r "
                      "FROM attempts GROUP BY provider").set_index("provider")
    for provider in check.index:
        assert df.loc[provider, "success_rate"] == pytest.approx(check.loc[provider, "r"])
    assert A.success_by_provider(log, A.Filters(sources=("live",))).empty


def test_cost_distribution_by_model_quartiles(seeded):
    s, log = seeded
    df = A.cost_distribution_by_model(log, A.Filters()).set_index("model")
    costs = [float(r.cost_usd) for r in s.results if r.model == "gpt-4" and r.cost_usd is not None]
    assert df.loc["gpt-4", "priced"] == len(costs)
    # Quartiles from the rollup's cost histogram (within its bin error); the mean and extremes are exact.
    assert df.loc["gpt-4", "median"] == pytest.approx(statistics.median(costs), rel=A.QUANTILE_ERROR)
    assert df.loc["gpt-4", "q1"] == pytest.approx(np.percentile(costs, 25), rel=A.QUANTILE_ERROR)
    assert (df.loc["gpt-4", "min"], df.loc["gpt-4", "max"]) == (min(costs), max(costs))
    assert df.loc["gpt-4", "mean"] == pytest.approx(statistics.fmean(costs), rel=1e-9)
    assert df.loc["gemini-1.5-pro", "unpriced"] > 0 and np.isnan(df.loc["gemini-1.5-pro", "median"])


def test_spend_by_task_ranks_and_shares(seeded):
    s, log = seeded
    df = A.spend_by(log, A.Filters(), "task")
    want = defaultdict(Decimal)
    for r in s.results:
        for a in r.attempts:
            want[r.task] += a.cost_usd or 0
    assert list(df.task) == sorted(want, key=want.get, reverse=True)
    assert df.share.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="can group spend by"):
        A.spend_by(log, A.Filters(), "prompt; DROP TABLE requests")


def test_provider_health_statuses_from_recent_attempts(seeded):
    s, log = seeded
    health = A.provider_health(log, {"gemini": None, "openai": None, "anthropic": "no API key (set X)",
                                     "ollama": None}, A.Filters(), now=s.now).set_index("provider")
    assert health.loc["anthropic", "status"] == "not configured" and not health.loc["anthropic", "configured"]
    assert health.loc["ollama", "status"] == "no recent calls" and health.loc["ollama", "attempts"] == 0
    recent = [a for r in s.results for a in r.attempts if s.now - timedelta(hours=1) <= a.started_at <= s.now]
    gem = [a for a in recent if a.provider == "gemini"]
    assert health.loc["gemini", "attempts"] == len(gem)
    assert health.loc["gemini", "success_rate"] == pytest.approx(sum(a.ok for a in gem) / len(gem))
    last = max((a for r in s.results for a in r.attempts if a.provider == "gemini" and a.error_type),
               key=lambda a: a.started_at)
    assert health.loc["gemini", "last_error"] == last.error
    assert health.loc["gemini", "last_error_at"].to_pydatetime() == last.started_at


def test_provider_health_down_when_the_latest_attempts_all_failed(tmp_path: Path):
    results = build_results(n=20, now=NOW, days=1)
    bad = [r for r in results if r.started_at > NOW - timedelta(hours=1)]
    assert bad
    from dataclasses import replace
    failed = [replace(r, attempts=tuple(replace(a, status="error", error_type="unavailable", error="boom",
                                                provider="openai") for a in r.attempts)) for r in bad]
    seed_log(tmp_path / "down.duckdb", failed, now=NOW)
    with DuckDBCallLog(tmp_path / "down.duckdb") as log:
        health = A.provider_health(log, {"openai": None}, A.Filters(), now=NOW)
    assert health.iloc[0]["status"] == "down" and health.iloc[0]["success_rate"] == 0.0


def _budget_log(tmp_path: Path, spend_per_day: Decimal, days: int, now: datetime, source: str = "live"):
    from dataclasses import replace
    base = build_results(n=days, now=now, days=days, source=source)
    results = []
    for i, r in enumerate(base):
        a = replace(r.attempts[0], status="ok", error_type=None, cost_usd=spend_per_day, provider="openai",
                    started_at=datetime(now.year, now.month, 1, 12, tzinfo=UTC) + timedelta(days=i))
        results.append(replace(r, tier="pro", attempts=(a,), status="ok", started_at=a.started_at))
    seed_log(tmp_path / "budget.duckdb", results, now=now)
    return DuckDBCallLog(tmp_path / "budget.duckdb")


def test_budget_burn_projection_run_out_date_and_alerts(tmp_path: Path):
    now = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)      # 10 days into a 30-day month
    budgets = Budgets.model_validate({"tier": {"pro": 100.0, "free": 50.0},
                                      "provider": {"openai": 80.0, "gemini": 5.0}})
    early = Budgets.model_validate({"tier": {"pro": {"monthly": 300.0, "alert_pct": 25}}})
    with _budget_log(tmp_path, Decimal("9"), 10, now) as log:   # $9 a day, days 1..10 -> $90 by now
        df = A.budget_status(log, budgets, A.Filters(), now=now).set_index(["scope", "name"])
        curve = A.budget_burndown(log, budgets, A.Filters(), now=now)
        alert_only = A.budget_status(log, early, A.Filters(), now=now).iloc[0]
        filtered = A.budget_status(log, budgets, A.Filters(sources=("demo",), tiers=("free",)), now=now)
    with _budget_log(tmp_path / "demo", Decimal("9"), 10, now, source="demo") as log:
        demo_only = A.budget_status(log, budgets, A.Filters(), now=now)
    pro = df.loc[("tier", "pro")]
    assert pro.spent_usd == pytest.approx(90.0) and pro.spent_pct == pytest.approx(90.0)
    assert pro.projected_usd == pytest.approx(270.0)          # $9/day x 30 days
    assert str(pro.runs_out_on) == "2026-11-12"               # 100 / 9 = 11.1 days after the 1st
    assert pro.level == "projected over" and pro.alerts == "projected over, alert"
    openai = df.loc[("provider", "openai")]
    assert openai.level == "over" and str(openai.runs_out_on) == "2026-11-09"   # cumulative passes $80 on day 9
    assert alert_only.level == "alert" and alert_only.alerts == "alert"   # 30 % spent, 90 % projected
    assert list(filtered.spent_usd) == list(df.spent_usd)     # the sidebar's filters do not apply to budgets
    assert (demo_only.spent_usd == 0).all() and (demo_only.level == "ok").all()   # demo data never counts
    assert df.loc[("tier", "free")].spent_usd == 0
    gem = df.loc[("provider", "gemini")]
    assert gem.spent_usd == 0 and gem.level == "ok" and gem.runs_out_on is None
    pro_curve = curve[(curve.scope == "tier") & (curve.name == "pro")]
    assert list(pro_curve.cumulative_usd) == pytest.approx([9.0 * k for k in range(1, 11)])


def test_list_requests_searches_text_and_pages(seeded):
    s, log = seeded
    page, total = A.list_requests(log, A.Filters(), search="<b>bold</b>")
    assert total == 1 and page.iloc[0].request_id == s.results[1].request_id
    page, total = A.list_requests(log, A.Filters(), search="100%")   # % is literal, not a wildcard
    assert total == 0
    page, total = A.list_requests(log, A.Filters(tiers=("free",)), statuses=("ok",), limit=7, offset=7)
    want = sorted((r for r in s.results if r.tier == "free" and r.ok), key=lambda r: r.started_at, reverse=True)
    assert total == len(want) and list(page.request_id) == [r.request_id for r in want[7:14]]


def test_search_matches_exactly_what_the_calls_page_says_it_matches(seeded):
    """Text anywhere in prompt, output, error, provider or model, ignoring case; ids from their start."""
    s, log = seeded
    rows = log.query("SELECT request_id, parent_id, prompt, output, error, provider, model, ts FROM requests")
    some_id = rows.request_id.iloc[5]
    terms = ["story", "STORY", "openai", "Claude", "mini", "timeout", some_id[:10], some_id[:10].upper(),
             some_id[4:14], "zz-no-such-text", *(p[:8] for p in rows.parent_id.dropna()[:1])]
    matched = {}
    for term in terms:
        want = rows[[any(term.lower() in str(v).lower() for v in (r.prompt, r.output, r.error, r.provider, r.model)
                         if v is not None and v == v)
                     or any(str(i).startswith(t) for i in (r.request_id, r.parent_id) if i is not None and i == i
                            for t in (term, term.lower()))
                     for r in rows.itertuples()]]
        page, total = A.list_requests(log, A.Filters(), search=term, limit=10_000)
        assert total == len(want), term
        assert sorted(page.request_id) == sorted(want.request_id), term
        assert list(page.ts) == sorted(page.ts, reverse=True), term
        matched[term] = total
    assert matched["story"] > 0 and matched["openai"] > 0 and matched["Claude"] > 0
    assert matched[some_id[:10]] == matched[some_id[:10].upper()] == 1
    assert A.list_requests(log, A.Filters(), search=some_id[4:14])[1] == 0     # not the middle of an id
    _, total = A.list_requests(log, A.Filters(), search="story", limit=3, offset=3)
    assert total == A.list_requests(log, A.Filters(), search="story")[1]


def test_request_detail_has_attempts_and_trace(seeded):
    s, log = seeded
    failed = next(r for r in s.results if r.status == "failed")
    d = A.request_detail(log, failed.request_id)
    assert list(d.attempts.provider) == [a.provider for a in failed.attempts]
    assert list(d.attempts.error_type) == [a.error_type for a in failed.attempts]
    assert [c["provider"] for c in d.chain] == [e.provider for e in failed.chain]
    assert d.request["error"] == failed.error
    assert A.request_detail(log, "no-such-request") is None


def test_request_ids_name_their_time_and_the_lookup_finds_them_by_it_or_by_a_scan(tmp_path: Path):
    from dataclasses import replace

    from taelio_core.analytics.calls import id_time
    from taelio_core.routing.context import new_id

    before = datetime.now(UTC) - timedelta(seconds=1)
    fresh = new_id()
    assert len(fresh) == 32 and int(fresh, 16) >= 0
    assert before <= id_time(fresh) <= datetime.now(UTC) + timedelta(seconds=1)
    assert id_time("req-0000-0c5c") is None and id_time("f" * 32) is None    # no time, a future time
    results = build_results(n=12, now=NOW)
    # Three shapes of id: one naming the request's own time, one naming a time two days off (a
    # replayed or imported request), and one naming no time at all: each is found, with its attempts.
    stamp = f"{int(results[0].started_at.timestamp() * 1000):012x}"
    off = f"{int((results[1].started_at - timedelta(days=2)).timestamp() * 1000):012x}"
    ids = [stamp + "0" * 20, off + "1" * 20, "plain-id"]
    results = [replace(r, request_id=i) for r, i in zip(results, ids)] + results[3:]
    seeded = seed_log(tmp_path / "ids.duckdb", results, now=NOW)
    with DuckDBCallLog(seeded.path) as log:
        for result in results[:3]:
            d = A.request_detail(log, result.request_id)
            assert d is not None and d.request["request_id"] == result.request_id
            assert list(d.attempts.provider) == [a.provider for a in result.attempts]


def test_export_writes_the_filtered_requests_as_csv_and_parquet(seeded):
    import io

    import pandas as pd

    s, log = seeded
    f = A.Filters(tiers=("pro",))
    want = sorted(r.request_id for r in s.results if r.tier == "pro")
    from_csv = pd.read_csv(io.BytesIO(A.export_requests(log, f, "csv")))
    from_parquet = pd.read_parquet(io.BytesIO(A.export_requests(log, f, "parquet")))
    for df in (from_csv, from_parquet):
        assert sorted(df["request_id"]) == want and list(df.columns) == list(A.EXPORT_COLUMNS)
        assert "prompt" not in df.columns
    assert from_parquet["cost_usd"].sum() == pytest.approx(float(sum(r.cost_usd or 0 for r in s.results
                                                                      if r.tier == "pro")))
    with pytest.raises(ValueError, match="csv or parquet"):
        A.export_requests(log, f, "xlsx")
