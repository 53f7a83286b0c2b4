"""Each page in AppTest, against a real seeded DuckDB file, checking values that could be wrong."""
from __future__ import annotations

import pandas as pd

import re
from decimal import Decimal
from pathlib import Path

import pytest

from taelio_core.calllog import DuckDBCallLog
from tests.app.conftest import FAILING_FIRST_POLICY, failing_first_policy, make_app, metric, open_page
from ui.text import fmt_pct, money

pytestmark = pytest.mark.timeout(180)


def test_costs_spend_equals_the_sum_computed_in_sql(seeded_app):
    at = open_page(make_app(), "costs")
    with DuckDBCallLog(seeded_app.path) as log:
        start = at.session_state["filters"].start_ts
        spend = log.query("SELECT sum(cost_usd)::VARCHAR AS s, count(*) FILTER (WHERE cost_usd IS NULL "
                          "AND output_tokens > 0) AS unpriced FROM attempts WHERE ts >= ?", [start]).iloc[0]
        requests = log.count_requests()
    assert metric(at, "Spend") == money(Decimal(spend["s"]))
    assert metric(at, "Requests") == f"{requests:,}"
    assert metric(at, "Unpriced calls") == f"{int(spend['unpriced']):,}" and int(spend["unpriced"]) > 0
    assert len(at.get("plotly_chart")) >= 6
    assert any("Budgets this month" in s.value for s in at.subheader)


def test_costs_filter_by_tier_changes_the_spend(seeded_app):
    at = open_page(make_app(), "costs")
    at.multiselect(key="filter_tiers").select("free").run()
    free = sum((a.cost_usd for r in seeded_app.results if r.tier == "free" for a in r.attempts if a.cost_usd),
               Decimal(0))
    assert metric(at, "Spend") == money(free.quantize(Decimal("1e-10")))


def test_health_fallback_rate_matches_the_seeded_data(seeded_app):
    at = open_page(make_app(), "health")
    for tier in ("free", "pro", "admin"):
        mine = [r for r in seeded_app.results if r.tier == tier]
        fell = sum(1 for r in mine if r.fallback_depth > 0)
        assert metric(at, tier) == fmt_pct(fell / len(mine))      # the one percentage format: "21.7 %"
    table = at.dataframe[0].value.set_index("provider")
    assert list(table.index) == ["gemini", "openai", "anthropic"]
    assert set(table["key"]) == {"simulated (demo)"}
    assert table.loc["gemini", "status"] != "⚪ not configured"


def test_health_shows_a_provider_without_key_as_not_configured(seeded_app, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-only-openai-0123456789")
    at = open_page(make_app(), "health")
    table = at.dataframe[0].value.set_index("provider")
    assert table.loc["gemini", "status"] == "⚪ not configured"
    assert table.loc["gemini", "key"].startswith("no API key")
    assert table.loc["anthropic", "status"] == "⚪ not configured"
    assert table.loc["openai", "key"] == "configured" and table.loc["openai", "status"] != "⚪ not configured"
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "Live" in sidebar and "sk-test" not in sidebar


def _generate_idea(tmp_path: Path, monkeypatch, policy_text: str, prompt: str = "A lighthouse", **session):
    """Open Generate under the policy ``policy_text`` and submit one idea request."""
    policy = tmp_path / "apptest.toml"
    policy.write_text(policy_text)
    monkeypatch.setenv("TAELIO_POLICY", str(policy))
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "gen.duckdb"))
    at = open_page(make_app(**session), "generate")
    at.session_state["gen_task"] = "idea"  # the selectbox shows labels; set the value itself
    at.run()
    at.text_area(key="gen_prompt").input(prompt)  # inside the form: sent with the submit
    next(b for b in at.button if b.label == "Generate").click().run()
    return at


def test_generate_shows_the_fallback_attempt_when_the_first_entry_fails(tmp_path: Path, monkeypatch):
    at = _generate_idea(tmp_path, monkeypatch, FAILING_FIRST_POLICY)
    assert not at.exception and not at.error, [e.value for e in at.error]
    attempts = at.dataframe[0].value
    assert list(attempts["provider:model"]) == ["alpha:a-1", "beta:b-1"]
    assert list(attempts["status"]) == ["error", "ok"]
    assert attempts["error"].iloc[0].startswith("unavailable (server error or connection failed) (HTTP 503)")
    trace_text = " ".join(m.value for m in at.markdown)
    assert "served by `beta:b-1`" in trace_text and "2 attempt(s)" in trace_text
    with DuckDBCallLog(tmp_path / "gen.duckdb") as log:
        logged = log.query("SELECT provider, status FROM attempts ORDER BY n")
    assert list(logged["provider"]) == ["alpha", "beta"]
    # The generation is kept for the session and can be opened again after other reruns.
    at.run()
    assert len(at.dataframe) == 0          # the live trace is gone after a rerun...
    at.selectbox(key="gen_reopen").set_value(0).run()   # ...and comes back from the session's list
    reopened = at.dataframe[0].value
    assert list(reopened["provider:model"]) == ["alpha:a-1", "beta:b-1"]


def test_generate_full_flow_shows_both_parts_and_their_combined_total(tmp_path: Path, monkeypatch):
    policy = tmp_path / "apptest.toml"
    policy.write_text(FAILING_FIRST_POLICY + '\n[pricing."beta:b-1"]\ninput_per_mtok = 3\noutput_per_mtok = 15\n')
    monkeypatch.setenv("TAELIO_POLICY", str(policy))
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "gen.duckdb"))
    at = open_page(make_app(), "generate")
    assert at.session_state["gen_task"] == "full"          # the full flow is the default task
    at.text_area(key="gen_prompt").input("A lighthouse")
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.dataframe) == 2                           # one trace per part
    with DuckDBCallLog(tmp_path / "gen.duckdb") as log:
        rows = log.query("SELECT parent_id, input_tokens, output_tokens, cost_usd FROM requests")
    assert len(rows) == 2 and rows["parent_id"].nunique() == 1
    tokens = f"{int(rows['input_tokens'].sum()):,} / {int(rows['output_tokens'].sum()):,}"
    assert metric(at, "Tokens in / out") == tokens
    assert rows["cost_usd"].notna().all()
    assert metric(at, "Cost") == money(sum((Decimal(str(c)) for c in rows["cost_usd"]), Decimal(0)))
    assert metric(at, "Latency").endswith(("ms", "s"))
    assert any(rows["parent_id"].iloc[0] in c.value for c in at.caption)


def test_generate_every_provider_failed_is_one_sentence_with_the_trace(tmp_path: Path, monkeypatch):
    both_fail = failing_first_policy(beta_errors={"rate_limited": 1.0})
    at = _generate_idea(tmp_path, monkeypatch, both_fail)
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]   # shown escaped, as Markdown source
    assert len(errors) == 1 and errors[0].startswith("Every provider failed for free/idea"), errors
    assert list(at.dataframe[0].value["status"]) == ["error", "error"]


def test_generate_renders_model_output_without_html_or_remote_images(tmp_path: Path, monkeypatch):
    from taelio_core.config.policy_parser import parse_policy
    from taelio_core.providers.function import FunctionProvider
    from taelio_core.routing.router import Router
    from taelio_core.wiring import Taelio

    hostile = 'Hi ![pixel](http://evil.example/p.png) <img src="http://evil.example/x.png"> <script>x()</script>'
    policy = parse_policy(FAILING_FIRST_POLICY)
    providers = {"alpha": FunctionProvider("alpha", lambda m, r: hostile),
                 "beta": FunctionProvider("beta", lambda m, r: "unused")}
    log = DuckDBCallLog(tmp_path / "h.duckdb")
    from taelio_core.config.settings import load_settings
    engine = Taelio(policy=policy, settings=load_settings(env={}), providers=providers,
                    router=Router(policy, providers, sink=log), log=log, mode="live")
    at = _generate_idea(tmp_path, monkeypatch, FAILING_FIRST_POLICY, taelio_engine=engine)
    shown = [m.value for m in at.markdown if "evil" in m.value]
    assert shown, "the answer was not shown"
    for value in shown:
        # Every <, ! and [ reaches Markdown escaped, so it renders as text: no tag, no image, no link.
        assert not re.search(r"(?<!\\)[<!\[]", value), value
        assert r"\!\[pixel\]" in value and r"\<img" in value
    log.close()


def test_calls_search_finds_the_request_and_its_detail(seeded_app):
    at = open_page(make_app(), "calls")
    at.text_input(key="calls_search").input("<b>bold</b>").run()
    table = at.dataframe[0].value
    assert len(table) == 1 and table["request_id"].iloc[0] == seeded_app.results[1].request_id
    # A log this small is one search slice: the search covered the whole range, and says so.
    assert any(c.value.startswith("Searched the whole filtered range: 1 matching request ·") for c in at.caption)


def test_empty_log_offers_demo_data_instead_of_blank_charts(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "empty.duckdb"))
    for page in ("costs", "health", "calls"):
        at = open_page(make_app(), page)
        # The page's own offer, and the sidebar's (always there in demo mode).
        assert sorted(b.key for b in at.button if b.label == "Load demo data") == ["load_demo", "sidebar_load_demo"]
        assert not [b for b in at.button if b.label.startswith("Remove demo data")]
        assert not at.get("plotly_chart")
        assert any("Nothing logged yet" in m.value for m in at.markdown)


def test_calls_detail_shows_attempts_trace_prompt_and_output(seeded_app):
    failed_over = next(r for r in seeded_app.results if r.ok and r.fallback_depth == 2)
    at = open_page(make_app(), "calls")
    at.text_input(key="calls_open").input(failed_over.request_id).run()
    attempts = at.dataframe[1].value
    assert list(attempts["provider:model"]) == [f"{a.provider}:{a.model}" for a in failed_over.attempts]
    assert list(attempts["status"]) == ["error", "error", "ok"]
    text = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert failed_over.prompt in text and failed_over.text in text
    assert f"served by `{failed_over.provider}:{failed_over.model}`" in text
    at.text_input(key="calls_open").input("no-such-id").run()
    assert any("No request with id" in w.value for w in at.warning)


def test_health_test_provider_probes_shows_the_result_and_logs_it_as_test(tmp_path: Path, monkeypatch):
    policy = tmp_path / "apptest.toml"
    policy.write_text(FAILING_FIRST_POLICY)
    monkeypatch.setenv("TAELIO_POLICY", str(policy))
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "probe.duckdb"))
    at = open_page(make_app(), "health")
    at.selectbox(key="probe_provider").select("alpha").run()
    next(b for b in at.button if b.label == "Test provider").click().run()
    assert not at.exception
    attempts = next(d.value for d in at.dataframe if "provider:model" in d.value.columns)
    assert list(attempts["provider:model"]) == ["alpha:a-1"] and list(attempts["status"]) == ["error"]
    with DuckDBCallLog(tmp_path / "probe.duckdb") as log:
        logged = log.query("SELECT source, provider, status, error FROM attempts")
    assert logged[["source", "provider", "status"]].to_dict("records") == [
        {"source": "test", "provider": "alpha", "status": "error"}]
    # The probe is counted at once: the status table now has alpha's failed attempt in the last hour.
    table = at.run().dataframe[0].value.set_index("provider")
    assert table.loc["alpha", "attempts (1 h)"] == 1 and table.loc["alpha", "status"] == "🔴 down"
    assert table.loc["alpha", "last error"] == logged["error"].iloc[0]
    assert table.loc["beta", "status"] == "⚫ no recent calls" and table.loc["beta", "last error at"] == "–"


def test_load_demo_data_fills_the_empty_log_and_the_charts_appear(tmp_path: Path, monkeypatch):
    pytest.importorskip("taelio_core.demo", reason="the demo generator lands with the call-log branch")
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "empty.duckdb"))
    at = open_page(make_app(), "costs")
    at.button(key="load_demo").click().run()
    assert not at.exception
    with DuckDBCallLog(tmp_path / "empty.duckdb") as log:
        counts = log.query("SELECT count(*) AS n, count(*) FILTER (WHERE source = 'demo') AS demo, "
                           "count(*) FILTER (WHERE ts >= ?) AS shown FROM requests",
                           [at.session_state["filters"].start_ts]).iloc[0]
    assert counts["n"] == counts["demo"] > 1000
    assert metric(at, "Requests") == f"{int(counts['shown']):,}"
    assert len(at.get("plotly_chart")) >= 6
    # The page's offer is gone with the empty log; the sidebar keeps one, and offers to remove what was loaded.
    assert [b.key for b in at.button if b.label == "Load demo data"] == ["sidebar_load_demo"]
    assert [b.label for b in at.button if b.key == "sidebar_remove_demo"] == [f"Remove demo data ({counts['n']:,})"]
    assert any(f"Loaded {counts['n']:,} demo requests" in s.value for s in at.success)

    # AppTest drops the first click that follows a run ended by st.rerun(); a browser does not
    # (tests/browser/test_first_run.py clicks Remove straight after loading).
    at.run()
    at.button(key="sidebar_remove_demo").click().run()
    assert not at.exception
    with DuckDBCallLog(tmp_path / "empty.duckdb") as log:
        assert log.count_requests() == 0
    assert any(f"Removed {counts['n']:,} demo requests" in s.value for s in at.success)
    assert any("Nothing logged yet" in m.value for m in at.markdown) and not at.get("plotly_chart")
    assert not [b for b in at.button if b.key == "sidebar_remove_demo"]


def test_the_sidebar_offers_demo_data_in_demo_mode_even_when_the_log_holds_requests(seeded_app):
    at = open_page(make_app(), "generate")
    assert [b.key for b in at.button if b.label == "Load demo data"] == ["sidebar_load_demo"]


def _breakers(at) -> pd.DataFrame:  # noqa: ANN001
    return next(d.value for d in at.dataframe if {"state", "model", "until"} <= set(d.value.columns))


def test_health_shows_breakers_opening_after_failures(tmp_path: Path, monkeypatch):
    text = failing_first_policy(breakers={"consecutive_failures": 1})
    at = _generate_idea(tmp_path, monkeypatch, text)     # alpha fails once, beta answers
    assert not at.exception
    at.switch_page("pages/health.py")
    at.run()
    table = _breakers(at)
    states = dict(zip(table["provider"] + ":" + table["model"], table["state"]))
    assert states["alpha:a-1"] == "🔴 open" and states["beta:b-1"] == "🟢 closed"
    until = dict(zip(table["provider"], table["until"]))
    assert until["alpha"].endswith(" UTC") and until["beta"] == "–"     # a dash, never "None"
    history = next(d.value for d in at.dataframe if "to_state" in d.value.columns)
    assert history["to_state"].iloc[0] == "open" and history["provider"].iloc[0] == "alpha"
