"""Demo traffic: realistic, consistent, reproducible, and written to a real DuckDB file."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.demo import demo_outages, generate_demo_data
from taelio_core.generation import Usage
from taelio_core.policy import load_policy
from taelio_core.pricing import Pricer

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
POLICY = load_policy("seed")


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> DuckDBCallLog:
    log = DuckDBCallLog(tmp_path_factory.mktemp("demo") / "demo.duckdb")
    seen: list[float] = []
    written = generate_demo_data(log, POLICY, days=30, requests=20_000, seed=3, now=NOW, progress=seen.append)
    log.progress_seen = seen  # type: ignore[attr-defined]
    log.written = written  # type: ignore[attr-defined]
    return log


def scalar(log: DuckDBCallLog, sql: str, params: list | None = None) -> object:
    return log.query(sql, params or []).iloc[0, 0]


def test_writes_exactly_the_requests_asked_for(demo_log: DuckDBCallLog) -> None:
    assert demo_log.written == 20_000
    assert demo_log.count_requests() == 20_000
    assert demo_log.count_requests("demo") == 20_000


def test_progress_rises_to_one(demo_log: DuckDBCallLog) -> None:
    seen = demo_log.progress_seen
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert seen == sorted(seen)


def test_requests_agree_with_their_attempts(demo_log: DuckDBCallLog) -> None:
    bad = demo_log.query("""
        WITH a AS (
            SELECT request_id, count(*) AS n, max(n) AS last_n, count(*) FILTER (WHERE status <> 'ok') AS failed,
                   count(*) FILTER (WHERE status = 'ok') AS oks, sum(input_tokens) AS tin,
                   sum(output_tokens) AS tout, sum(cost_usd) AS cost,
                   bool_or(cost_usd IS NULL AND output_tokens > 0) AS unpriced,
                   any_value(provider || ':' || model) FILTER (WHERE status IN ('ok', 'truncated')) AS served
            FROM attempts GROUP BY request_id)
        SELECT r.request_id FROM requests r LEFT JOIN a USING (request_id)
        WHERE a.n IS NULL OR r.n_attempts <> a.n OR a.last_n <> a.n OR r.fallback_depth <> a.failed
           OR (r.status = 'ok') <> (a.oks = 1) OR a.oks > 1
           OR r.input_tokens <> a.tin OR r.output_tokens <> a.tout
           OR (r.cost_usd IS NULL) <> a.unpriced OR (NOT a.unpriced AND r.cost_usd <> coalesce(a.cost, 0))
           OR (r.status = 'failed') <> (r.provider IS NULL)
           OR (r.provider IS NOT NULL AND r.provider || ':' || r.model <> a.served)
           OR (r.status = 'failed' AND r.error IS NULL) OR (r.status = 'ok' AND r.error IS NOT NULL)
    """)
    assert bad.empty, bad.head()
    orphans = scalar(demo_log, "SELECT count(*) FROM attempts WHERE request_id NOT IN (SELECT request_id FROM requests)")
    assert orphans == 0


def test_attempts_follow_the_chain_in_order(demo_log: DuckDBCallLog) -> None:
    rows = demo_log.query("""
        SELECT tier, task, request_id, list(provider || ':' || model ORDER BY n) AS refs,
               list(retry ORDER BY n) AS retries
        FROM attempts GROUP BY ALL""")
    for tier, task, _rid, refs, retries in rows.itertuples(index=False):
        chain = [e.ref for e in POLICY.chain(tier, task)]
        positions = [chain.index(ref) for ref in refs]
        assert positions == sorted(positions), (tier, task, refs)
        for i in range(1, len(refs)):   # a retry stays on the entry; a new entry starts at retry 0
            assert (retries[i] > 0) == (refs[i] == refs[i - 1])


def test_covers_every_tier_task_and_chain_entry(demo_log: DuckDBCallLog) -> None:
    pairs = set(demo_log.query("SELECT DISTINCT tier, task FROM requests").itertuples(index=False, name=None))
    assert pairs == {(t, k) for t in POLICY.tiers for k in POLICY.tasks}
    used = set(demo_log.query("SELECT DISTINCT tier, task, provider, model FROM attempts")
               .itertuples(index=False, name=None))
    for (tier, task), chain in POLICY.chains.items():
        for entry in chain:
            assert (tier, task, entry.provider, entry.model) in used


def test_errors_look_like_real_traffic(demo_log: DuckDBCallLog) -> None:
    kinds = dict(demo_log.query("SELECT error_type, count(*) FROM attempts WHERE status <> 'ok' GROUP BY 1")
                 .itertuples(index=False, name=None))
    for kind in ("rate_limited", "unavailable", "timeout", "auth_failed", "model_not_found"):
        assert kinds.get(kind, 0) > 0, kind
    assert scalar(demo_log, "SELECT count(*) FROM attempts WHERE error_type = 'rate_limited' AND http_status <> 429") == 0
    statuses = set(demo_log.query("SELECT DISTINCT http_status FROM attempts WHERE error_type = 'unavailable' "
                                  "AND status = 'error'")["http_status"])
    assert statuses == {500, 502, 503}
    assert scalar(demo_log, "SELECT count(*) FROM attempts WHERE error_type = 'rate_limited' AND retry > 0") == 0 or \
        scalar(demo_log, "SELECT count(*) FROM attempts WHERE retry > 0") > 0
    # Retries happen, and a retried 429 waited for Retry-After (1 s in the seed policy's profiles).
    waited = demo_log.query("""
        SELECT epoch_ms(b.ts) - epoch_ms(a.ts) - a.latency_ms AS gap FROM attempts a JOIN attempts b
        ON a.request_id = b.request_id AND b.n = a.n + 1
        WHERE a.error_type = 'rate_limited' AND b.retry > 0""")["gap"]
    assert len(waited) > 0 and waited.min() >= 0.8 * 1000 - 1
    by_status = dict(demo_log.query("SELECT status, count(*) FROM requests GROUP BY 1").itertuples(index=False, name=None))
    assert set(by_status) == {"ok", "failed", "truncated"}
    assert by_status["ok"] > 0.95 * 20_000


def test_outages_show_in_the_providers_error_rate(demo_log: DuckDBCallLog) -> None:
    outages = demo_outages(POLICY, days=30, seed=3, now=NOW)
    assert len(outages) == 2 and outages[0].provider != outages[1].provider
    for outage in outages:
        rates = demo_log.query("""
            SELECT (ts >= ? AND ts < ?) AS inside, avg((status <> 'ok')::INT) AS error_rate, count(*) AS n
            FROM attempts WHERE provider = ? GROUP BY 1""", [outage.start, outage.end, outage.provider])
        rate = dict(zip(rates["inside"], rates["error_rate"]))
        assert rates.set_index("inside")["n"][True] > 5
        assert rate[True] > 0.6 and rate[False] < 0.15


def test_orchestrated_pairs_are_linked(demo_log: DuckDBCallLog) -> None:
    groups = demo_log.query("""
        SELECT parent_id, list(task ORDER BY ts) AS tasks, list(epoch_ms(ts) ORDER BY ts) AS ts,
               list(latency_ms ORDER BY ts) AS lat, list(status ORDER BY ts) AS st
        FROM requests WHERE parent_id IS NOT NULL GROUP BY 1""")
    assert len(groups) > 0.1 * 20_000 / 2
    stories = 0
    for _pid, tasks, ts, lat, st in groups.itertuples(index=False):
        assert tasks[0] == "idea" and len(tasks) <= 2
        if len(tasks) == 2:
            stories += 1
            assert tasks[1] == "story" and st[0] == "ok"
            assert ts[1] - ts[0] >= lat[0] - 1
    assert stories > 0.9 * len(groups)


def test_costs_are_the_pricers(demo_log: DuckDBCallLog) -> None:
    kinds = {name: cfg.kind for name, cfg in POLICY.providers.items()}
    pricer = Pricer(POLICY.model.pricing, kinds)
    rows = demo_log.query("""SELECT provider, model, input_tokens, output_tokens, cost_usd, price_source FROM attempts
                             WHERE status = 'ok' USING SAMPLE 200 ROWS""")
    for provider, model, tin, tout, cost, source in rows.itertuples(index=False):
        price = pricer.price(provider, model, Usage(input_tokens=tin, output_tokens=tout), NOW)
        assert source == price.source
        if price.cost_usd is None:
            assert cost is None or cost != cost  # NULL, never 0
        else:
            assert Decimal(str(cost)) == price.cost_usd.quantize(Decimal("1e-10"))
    assert scalar(demo_log, "SELECT count(*) FROM attempts WHERE status <> 'ok' AND cost_usd IS NOT NULL") == 0


def test_latency_and_tokens_follow_the_profiles(demo_log: DuckDBCallLog) -> None:
    ttft = dict(demo_log.query("""SELECT provider, median(ttft_ms) FROM attempts
                                  WHERE status = 'ok' AND ttft_ms < latency_ms GROUP BY 1""")
                .itertuples(index=False, name=None))
    for name, cfg in POLICY.model.simulator.items():
        assert 0.7 * cfg.ttft_ms < ttft[name] < 1.4 * cfg.ttft_ms
    tokens = dict(demo_log.query("SELECT task, median(output_tokens) FROM attempts WHERE status='ok' GROUP BY 1")
                  .itertuples(index=False, name=None))
    assert tokens["story"] > 2.5 * tokens["idea"]
    assert scalar(demo_log, "SELECT max(output_tokens) FROM attempts WHERE task = 'idea'") <= 400


def test_volume_follows_the_day_and_the_week(demo_log: DuckDBCallLog) -> None:
    hourly = demo_log.query("SELECT hour(ts) AS h, count(*) AS n FROM requests GROUP BY 1").set_index("h")["n"]
    assert hourly[15] > 2 * hourly[3]
    daily = demo_log.query("""SELECT isodow(ts) >= 6 AS weekend, count(*) / count(DISTINCT ts::DATE) AS per_day
                              FROM requests WHERE ts >= ? GROUP BY 1""", [NOW - timedelta(days=28)])
    per_day = dict(zip(daily["weekend"], daily["per_day"]))
    assert per_day[True] < 0.85 * per_day[False]
    span = demo_log.query("SELECT min(ts) AS lo, max(ts) AS hi FROM requests").iloc[0]
    assert span["lo"] >= NOW - timedelta(days=30) and span["hi"] < NOW + timedelta(minutes=5)


def test_text_is_marked_simulated(demo_log: DuckDBCallLog) -> None:
    assert scalar(demo_log, "SELECT count(*) FROM requests WHERE prompt NOT LIKE '%simulated%'") == 0
    assert scalar(demo_log, "SELECT count(*) FROM requests WHERE status <> 'failed' AND output NOT LIKE '[simulated %'") == 0
    assert scalar(demo_log, "SELECT count(*) FROM requests WHERE NOT simulated OR source <> 'demo'") == 0
    assert scalar(demo_log, "SELECT max(length(prompt)) FROM requests") < 400
    assert scalar(demo_log, "SELECT count(*) FROM requests WHERE prompt_sha256 <> sha256(prompt)") == 0


def test_same_seed_same_rows_and_rerun_adds_nothing(tmp_path: Path) -> None:
    one, two = DuckDBCallLog(tmp_path / "one.duckdb"), DuckDBCallLog(tmp_path / "two.duckdb")
    generate_demo_data(one, POLICY, days=3, requests=500, seed=9, now=NOW)
    generate_demo_data(two, POLICY, days=3, requests=500, seed=9, now=NOW)
    sql = "SELECT * EXCLUDE (trace) FROM requests ORDER BY request_id"
    assert one.query(sql).equals(two.query(sql))
    generate_demo_data(one, POLICY, days=3, requests=500, seed=9, now=NOW)
    assert one.count_requests() == 500
    generate_demo_data(one, POLICY, days=3, requests=500, seed=10, now=NOW)
    assert one.count_requests() == 1000


def test_default_volume_and_other_policies(tmp_path: Path) -> None:
    log = DuckDBCallLog(tmp_path / "current.duckdb")
    current = load_policy("current")
    assert generate_demo_data(log, current, days=2, seed=1, now=NOW) == 800
    assert set(log.query("SELECT DISTINCT policy FROM requests")["policy"]) == {current.name}
    # Present-day models are all in the price catalogue: nothing unpriced.
    assert scalar(log, "SELECT count(*) FROM attempts WHERE status = 'ok' AND cost_usd IS NULL") == 0


def test_hash_only_log_stores_no_demo_text(tmp_path: Path) -> None:
    log = DuckDBCallLog(tmp_path / "hash.duckdb", store_text=False)
    generate_demo_data(log, POLICY, days=1, requests=300, seed=1, now=NOW)
    assert scalar(log, "SELECT count(*) FROM requests WHERE prompt IS NOT NULL OR output IS NOT NULL") == 0
    assert scalar(log, "SELECT count(*) FROM requests WHERE prompt_sha256 IS NULL") == 0


def test_bad_arguments(tmp_path: Path) -> None:
    log = DuckDBCallLog(tmp_path / "x.duckdb")
    with pytest.raises(ValueError, match="days"):
        generate_demo_data(log, POLICY, days=0)
    with pytest.raises(ValueError, match="requests"):
        generate_demo_data(log, POLICY, requests=-1)
    assert generate_demo_data(log, POLICY, days=1, requests=0, now=NOW) == 0
