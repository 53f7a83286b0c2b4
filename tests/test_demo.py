"""Demo traffic: made by the real router in virtual time; realistic, consistent, reproducible, removable."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from taelio_core.config.policy_parser import load_policy
from taelio_core.config.pricing import Pricer
from taelio_core.demo import demo_outages, generate_demo_data
from taelio_core.routing.generation import Usage

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # fixed-date-ok: every call passes it as now=, and the generator reads no other clock
POLICY = load_policy("seed")
N = 8_000


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> DuckDBCallLog:
    log = DuckDBCallLog(tmp_path_factory.mktemp("demo") / "demo.duckdb")
    seen: list[float] = []
    written = generate_demo_data(log, POLICY, days=30, requests=N, seed=3, now=NOW, progress=seen.append)
    log.progress_seen = seen  # type: ignore[attr-defined]
    log.written = written  # type: ignore[attr-defined]
    return log


def scalar(log: DuckDBCallLog, sql: str, params: list | None = None) -> object:
    return log.query(sql, params or []).iloc[0, 0]


def test_writes_exactly_the_requests_asked_for(demo_log: DuckDBCallLog) -> None:
    assert demo_log.written == N
    assert demo_log.count_requests() == N
    assert demo_log.count_requests("demo") == N


def test_progress_rises_to_one(demo_log: DuckDBCallLog) -> None:
    seen = demo_log.progress_seen
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert seen == sorted(seen)


def test_requests_agree_with_their_attempts(demo_log: DuckDBCallLog) -> None:
    bad = demo_log.query("""
        WITH a AS (
            SELECT request_id, count(*) AS n, max(n) AS last_n,
                   -- fallbacks: the entries tried that did not serve the answer (retries of one entry are not)
                   count(DISTINCT provider || ':' || model) - (count(*) FILTER (WHERE status = 'ok') > 0)::INT AS failed,
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
    # The router reaches the second entry of every chain (a fallback); deeper entries only when both fail.
    for (tier, task), chain in POLICY.chains.items():
        for entry in chain[:2]:
            assert (tier, task, entry.provider, entry.model) in used


def test_errors_look_like_real_traffic(demo_log: DuckDBCallLog) -> None:
    kinds = dict(demo_log.query("SELECT error_type, count(*) FROM attempts WHERE status <> 'ok' GROUP BY 1")
                 .itertuples(index=False, name=None))
    for kind in ("rate_limited", "unavailable", "timeout", "auth_failed", "model_not_found"):
        assert kinds.get(kind, 0) > 0, kind
    assert scalar(demo_log, "SELECT count(*) FROM attempts WHERE error_type = 'rate_limited' AND http_status <> 429") == 0
    statuses = set(demo_log.query("SELECT DISTINCT http_status FROM attempts WHERE error_type = 'unavailable' "
                                  "AND status = 'error'")["http_status"])
    assert statuses == {503}
    assert scalar(demo_log, "SELECT count(*) FROM attempts WHERE error_type = 'rate_limited' AND retry > 0") == 0 or \
        scalar(demo_log, "SELECT count(*) FROM attempts WHERE retry > 0") > 0
    # Retries happen, and a retried 429 waited for Retry-After (1 s in the seed policy's profiles).
    waited = demo_log.query("""
        SELECT epoch_ms(b.ts) - epoch_ms(a.ts) - a.latency_ms AS gap FROM attempts a JOIN attempts b
        ON a.request_id = b.request_id AND b.n = a.n + 1
        WHERE a.error_type = 'rate_limited' AND b.retry > 0""")["gap"]
    assert len(waited) > 0 and waited.min() >= 0.8 * 1000 - 1
    by_status = dict(demo_log.query("SELECT status, count(*) FROM requests GROUP BY 1").itertuples(index=False, name=None))
    # Streams break mid-answer now and then; a request fails whole only when its whole chain does.
    assert {"ok", "truncated"} <= set(by_status) <= {"ok", "failed", "truncated"}
    assert by_status["ok"] > 0.95 * N


def test_outages_show_in_the_providers_error_rate(demo_log: DuckDBCallLog) -> None:
    outages = demo_outages(POLICY, days=30, seed=3, now=NOW)
    assert len(outages) == 2 and outages[0].provider != outages[1].provider
    for outage in outages:
        rates = demo_log.query("""
            SELECT (ts >= ? AND ts < ?) AS inside, avg((status <> 'ok')::INT) AS error_rate, count(*) AS n
            FROM attempts WHERE provider = ? GROUP BY 1""", [outage.start, outage.end, outage.provider])
        rate = dict(zip(rates["inside"], rates["error_rate"]))
        assert rates.set_index("inside")["n"][True] >= 3
        assert rate[True] > 0.6 and rate[False] < 0.15


def test_orchestrated_pairs_are_linked(demo_log: DuckDBCallLog) -> None:
    groups = demo_log.query("""
        SELECT parent_id, list(task ORDER BY ts) AS tasks, list(epoch_ms(ts) ORDER BY ts) AS ts,
               list(latency_ms ORDER BY ts) AS lat, list(status ORDER BY ts) AS st
        FROM requests WHERE parent_id IS NOT NULL GROUP BY 1""")
    assert len(groups) > 0.1 * N / 2
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
    assert scalar(demo_log, "SELECT max(length(prompt)) FROM requests WHERE task = 'idea'") < 400
    # A story's prompt is rendered from its template with the idea the router answered, as live.
    pairs = demo_log.query("""SELECT i.output AS idea, s.prompt AS story_prompt FROM requests i JOIN requests s
                              ON i.parent_id = s.parent_id AND i.task = 'idea' AND s.task = 'story'""")
    assert len(pairs) > 0 and all(idea in prompt for idea, prompt in pairs.itertuples(index=False))
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


def test_remove_demo_data_deletes_demo_rows_only_and_the_charts_forget_them(tmp_path: Path) -> None:
    from taelio_core.analytics import rollup
    from taelio_core.config.settings import load_settings
    from taelio_core.demo import remove_demo_data
    from taelio_core.providers import build_providers
    from taelio_core.routing.inputs import Inputs
    from taelio_core.routing.router import Router

    log = DuckDBCallLog(tmp_path / "mixed.duckdb")
    generate_demo_data(log, POLICY, days=2, requests=300, seed=4, now=NOW)
    live = Router(POLICY, build_providers(POLICY, load_settings(env={}), mode="demo", speed=0.0), sink=log)
    live.generate("pro", "idea", Inputs(prompt="A lighthouse"), source="live")
    log.flush()
    sums = "SELECT source, sum(requests)::INT AS n FROM request_rollup GROUP BY 1 ORDER BY 1"
    before = rollup.read(log, lambda r: r.query(sums))
    assert dict(zip(before["source"], before["n"])) == {"demo": 300, "live": 1}

    assert remove_demo_data(log) == 300
    assert log.count_requests() == 1 and log.count_requests("live") == 1
    assert scalar(log, "SELECT count(*) FROM attempts WHERE source = 'demo'") == 0
    assert scalar(log, "SELECT count(*) FROM attempts") >= 1
    after = rollup.read(log, lambda r: r.query(sums))
    assert dict(zip(after["source"], after["n"])) == {"live": 1}
    assert remove_demo_data(log) == 0


def test_demo_data_and_live_routing_make_the_same_decisions_for_the_same_fault_script(tmp_path: Path) -> None:
    """One fault script (per request, provider, model and try) through live routing with the simulator, through
    the demo generator and through the sandbox: the same attempts, in the same order, with the same outcomes."""
    import asyncio
    import hashlib
    import random

    from taelio_core.demo.traffic import demo_traffic
    from taelio_core.providers.simulated import CURRENT_REQUEST, RequestSpec, ScriptedTry
    from taelio_core.routing.router import Router
    from taelio_core.sandbox.replay import run_policy, sandbox_providers
    from dataclasses import replace

    from taelio_core.errors import TaelioError
    from taelio_core.sandbox.models import ModelSet, models_from_policy
    from tests.sandbox.conftest import current_policy

    # Rules that depend on wall time (breaker windows, back-off sleeps) are off: the live run takes real
    # seconds, the others virtual days. Retries stay on, with no waiting. The attempt timeout is long, so a
    # slow moment of a loaded machine cannot turn a live answer into a timeout.
    policy = current_policy(timeout_s=5.0, extra="[resilience]\nbackoff_base_s = 0.0\nbackoff_max_s = 0.0\n"
                                                  "[breakers]\nenabled = false\n")
    classes = [None, None, None, "unavailable", "rate_limited", "timeout", "model_not_found", "content_blocked"]

    def script(i: int, provider: str, model: str, tried: int) -> ScriptedTry:
        digest = hashlib.sha256(f"{i}|{provider}|{model}|{tried}".encode()).digest()
        return ScriptedTry(error=classes[digest[0] % len(classes)], latency_s=0.001, retry_after_s=0.0)

    n = 120
    log = DuckDBCallLog(tmp_path / "scripted.duckdb")
    assert generate_demo_data(log, policy, days=1, requests=n, seed=5, now=NOW, script=script, pair_share=0.0) == n
    rows = log.query("""SELECT r.ts, r.status, list((a.provider, a.model, a.status, a.error_type) ORDER BY a.n) AS tries
                        FROM requests r JOIN attempts a USING (request_id) GROUP BY r.request_id, r.ts, r.status
                        ORDER BY r.ts""")
    demo = [(status, [tuple(t.values()) if isinstance(t, dict) else tuple(t) for t in tries])
            for _, status, tries in rows.itertuples(index=False)]

    plan = demo_traffic(policy, days=1, requests=n, seed=5, now=NOW, pair_share=0.0)
    tiers = [plan.traffic.tiers[k] for k in plan.traffic.tier_idx.tolist()]
    tasks = [plan.traffic.tasks[k] for k in plan.traffic.task_idx.tolist()]
    results: dict[int, object] = {}

    class Sink:
        def record(self, result) -> None:  # noqa: ANN001
            results[CURRENT_REQUEST.get().index] = result

    # Live: the Router on a real event loop and the wall clock, the simulator as every provider; its delays
    # scaled to a hundredth, so a scripted timeout fails after 50 ms instead of the whole 5 s.
    models = models_from_policy(policy)
    fast = ModelSet(models={ref: replace(m, speed=0.01) for ref, m in models.models.items()})
    router = Router(policy, sandbox_providers(list(policy.providers), fast, seed=5, script=script), sink=Sink(),
                    rng=random.Random(5))

    async def live() -> None:
        for i in range(n):
            CURRENT_REQUEST.set(RequestSpec(i, text=True))
            try:
                await router.agenerate(tiers[i], tasks[i], plan.inputs[i])
            except TaelioError:
                pass
    asyncio.run(live())
    live_decisions = [(results[i].status, [(a.provider, a.model, a.status, a.error_type)
                                           for a in results[i].attempts]) for i in range(n)]
    assert demo == live_decisions

    # The sandbox over the same requests decides the same too.
    sandbox = run_policy(policy, plan.traffic, models_from_policy(policy), seed=5, script=script)
    by_request: dict[int, list[tuple]] = {}
    for row in sandbox.attempts.itertuples():
        error = row.error_type if isinstance(row.error_type, str) else None
        by_request.setdefault(int(row.i), []).append((row.provider, row.model, row.status, error))
    assert [(s, by_request[i]) for i, s in enumerate(sandbox.requests["status"])] == live_decisions

    # The script really exercised retries, fallbacks, timeouts and requests that failed whole.
    statuses = [s for s, _ in live_decisions]
    assert "failed" in statuses and statuses.count("ok") > n / 2
    tries = [t for _, ts in live_decisions for t in ts]
    assert any(t[3] == "timeout" for t in tries) and any(t[3] == "content_blocked" for t in tries)
    assert any(len({t[:2] for t in ts}) < len(ts) for _, ts in live_decisions)  # retries of an entry


def test_removed_demo_rows_leave_the_charts_even_when_newer_rows_hide_the_deletion(tmp_path: Path) -> None:
    """After a fold, more live rows arrive than demo rows go: the row count grows, so only ``rollup.invalidate``
    tells the next read to rebuild (a count-based check alone would keep the demo rows in the charts)."""
    from taelio_core.analytics import rollup
    from taelio_core.demo import remove_demo_data
    from tests.seeded_log import build_results

    log = DuckDBCallLog(tmp_path / "hidden.duckdb")
    generate_demo_data(log, POLICY, days=1, requests=100, seed=4, now=NOW)
    sums = "SELECT source, sum(requests)::INT AS n FROM request_rollup GROUP BY 1 ORDER BY 1"
    before = rollup.read(log, lambda r: r.query(sums))             # folds the demo rows
    assert dict(zip(before["source"], before["n"])) == {"demo": 100}
    for result in build_results(now=NOW, n=240, days=1, source="live"):
        log.record(result)
    log.flush()
    assert remove_demo_data(log) == 100
    after = rollup.read(log, lambda r: r.query(sums))
    assert dict(zip(after["source"], after["n"])) == {"live": 240}
    log.close()
