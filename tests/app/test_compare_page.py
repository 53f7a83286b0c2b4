"""The Compare page in AppTest: create, run, vote, leaderboard, verdict; errors; safe output."""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from streamlit.testing.v1 import AppTest

from taelio_core.experiments import Cell
from tests.app.conftest import FIVE_ROWS, make_app, open_page
from ui.compare import experiments

def _page() -> AppTest:
    """The Compare page inside the whole app (its shell and navigation), as a user opens it."""
    at = open_page(make_app(), "compare")
    assert not at.exception, at.exception
    return at


def _create(at: AppTest, csv: bytes = FIVE_ROWS.encode()) -> None:
    at.text_input(key="new_name").set_value("Terse vs default")
    at.selectbox(key="new_model_0").set_value("openai:gpt-4.1")
    at.selectbox(key="new_model_1").set_value("gemini:gemini-2.5-flash")
    at.text_input(key="new_label_1").set_value("terse")
    at.text_area(key="new_user_1").set_value("In two sentences: {prompt} ({genre})")
    at.radio(key="new_kind").set_value("Upload CSV")
    at.run()
    at.file_uploader(key="new_csv").upload("prompts.csv", csv, "text/csv")
    at.run()
    at.button(key="new_create").click()
    at.run()


def _run_to_completion(at: AppTest, button: str = "run_start") -> None:
    at.button(key=button).click()
    at.run()
    handle = at.session_state["compare_run"]
    handle.result(timeout=60)
    at.run()
    at.run()


def test_the_whole_flow_create_run_vote_leaderboard_verdict(page_env: Path) -> None:
    at = _page()
    assert any("No experiments yet" in i.value for i in at.info)
    _create(at)
    assert not at.error, [e.value for e in at.error]
    assert any("Created Terse vs default" in s.value and "2 variants × 5 inputs" in s.value for s in at.success)
    assert any("Estimate: 10 calls" in c.value for c in at.caption)
    _run_to_completion(at)
    done = [s.value for s in at.success if s.value.startswith("All cells done.")]
    assert done and " on this run against an estimate of $" in done[0]
    ex = experiments()
    eid = at.session_state["compare_experiment"]
    cells = ex.store.cells(eid)
    assert len(cells) == 10 and all(c.ok for c in cells.values())
    # side by side shows both answers with their numbers
    assert any(" ms · " in c.value and "tokens" in c.value for c in at.caption)
    # blind votes: names hidden until after the vote
    at.session_state["compare_tab"] = "Vote (blind)"
    at.run()
    labels = {"openai:gpt-4.1", "terse"}
    assert not any(any(lbl in m.value for lbl in labels) for m in at.markdown if m.value.startswith("**"))
    for i in range(6):
        at.button(key="vote_left" if i % 3 else "vote_right").click()
        at.run()
        assert not at.exception
    votes = ex.store.votes(eid)
    assert len(votes) == 6 and votes.winner.notna().all()
    assert any(c.value.startswith("Recorded: A. A was") for c in at.caption)
    assert at.session_state["vs_count"] == 6
    at.session_state["compare_tab"] = "Leaderboard"
    at.run()
    verdicts = [m.value for m in [*at.success, *at.info] if m.value.startswith("Votes: ")]
    assert len(verdicts) == 1 and ("n = 6" in verdicts[0])
    assert len(at.dataframe) >= 1
    board = at.dataframe[0].value
    assert set(board.Variant) == labels and board["Wins"].astype(int).sum() == 6
    assert at.get("plotly_chart"), "the quality-vs-cost chart is drawn"


def test_a_bad_csv_is_refused_with_its_row_and_column_and_nothing_is_stored(page_env: Path) -> None:
    at = _page()
    _create(at, csv=b"prompt,genre\nfine,Mystery\n,Comedy\n")
    assert [e.value for e in at.error] == ["prompts.csv: row 3, column 'prompt': the cell is empty"]
    assert experiments().store.list().empty


def test_the_judge_can_be_run_from_the_page(page_env: Path) -> None:
    at = _page()
    _create(at)
    _run_to_completion(at)
    _run_to_completion(at, "run_judge")
    assert any(s.value.startswith("Judged 5 pairs") for s in at.success)
    at.session_state["compare_tab"] = "Leaderboard"
    at.run()
    assert any(m.value.startswith("LLM judge (consistent verdicts only)") for m in [*at.success, *at.info])


def test_llm_output_is_shown_without_html_or_remote_images(page_env: Path) -> None:
    at = _page()
    _create(at)
    ex = experiments()
    eid = at.session_state["compare_experiment"]
    evil = 'Hi <img src=x onerror="alert(1)"> ![pixel](http://tracker.example/p.png) <script>x</script>'
    ex.store.save_cells(eid, [Cell(input_id=1, variant_id="v1", status="ok", output=evil, error=None,
                                   latency_ms=5.0, input_tokens=3, output_tokens=4, cost_usd=Decimal("0.001"),
                                   request_id=None)])
    at.run()
    shown = [m.value for m in at.markdown if "onerror" in m.value]
    assert shown == ['Hi \\<img src=x onerror="alert(1)"\\> \\![pixel](http://tracker.example/p.png) '
                     '\\<script\\>x\\</script\\>']


def test_cancel_stops_new_inputs_and_keeps_what_finished(page_env: Path) -> None:
    from tests.policies import fast_current_policy_text
    # 4 s per call, one input at a time: the Cancel click lands long before the 20 s run could end.
    (page_env / "fast.toml").write_text(fast_current_policy_text(latency_ms=4000))
    at = _page()
    at.slider(key="new_concurrency").set_value(1)
    _create(at)
    at.button(key="run_start").click()
    at.run()
    assert any(p.value is not None for p in at.get("progress"))
    at.button(key="run_cancel").click()
    at.run()
    handle = at.session_state["compare_run"]
    assert handle.token.cancelled
    final = handle.result(timeout=60)
    assert final.state == "cancelled" and final.run_done < 10
    at.run()
    at.run()
    assert any("Cancelled after" in w.value for w in at.warning)
    eid = at.session_state["compare_experiment"]
    assert len(experiments().store.cells(eid)) == final.run_done     # what finished is kept


def test_three_variants_show_a_pair_picker_and_the_win_probability_matrix(page_env: Path) -> None:
    at = _page()
    at.number_input(key="new_count").set_value(3)
    at.run()
    at.text_input(key="new_label_2").set_value("third")
    at.radio(key="new_kind").set_value("Paste CSV")
    at.run()
    at.text_area(key="new_csv_text").set_value(FIVE_ROWS)
    at.button(key="new_create").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    _run_to_completion(at)
    ex = experiments()
    eid = at.session_state["compare_experiment"]
    for input_id in range(1, 6):
        ex.store.add_vote(eid, input_id, "v3", "v1", "left")
        ex.store.add_vote(eid, input_id, "v2", "v1", "left")
    at.session_state["compare_tab"] = "Leaderboard"
    at.run()
    assert [s.label for s in at.selectbox][-2:] == ["Compare", "with"]
    prob = at.dataframe[1].value
    assert list(prob.columns) == list(prob.index) and len(prob) == 3 and prob.iloc[0, 0] == "–"
    at.selectbox(key="res_a").set_value("v1")
    at.run()
    at.selectbox(key="res_b").set_value("v3")
    at.run()
    verdict = next(m.value for m in [*at.success, *at.info] if m.value.startswith("Votes: "))
    assert "third" in verdict and "n = 5" in verdict


def test_done_when_twenty_prompts_two_templates_across_two_providers(page_env: Path) -> None:
    """The issue's acceptance scenario: upload 20 prompts, 2 prompt variants x 2 providers, vote blind,
    read a verdict with its interval and the cost per win."""
    at = _page()
    at.text_input(key="new_name").set_value("Two prompts, two providers")
    at.radio(key="new_mode").set_value("Templates × models")
    at.run()
    at.multiselect(key="new_x_models").set_value(["openai:gpt-4.1", "anthropic:claude-sonnet-4-5"])
    at.text_area(key="new_x_t2").set_value("In two sentences: {prompt}")
    at.radio(key="new_kind").set_value("Upload CSV")
    at.run()
    assert any(c.value == "2 template(s) × 2 model(s) = 4 variants" for c in at.caption)
    twenty = "prompt\n" + "\n".join(f"Premise number {i}: a door that should not open" for i in range(1, 21))
    at.file_uploader(key="new_csv").upload("twenty.csv", twenty.encode(), "text/csv")
    at.run()
    at.button(key="new_create").click()
    at.run()
    assert any("4 variants × 20 inputs" in s.value for s in at.success), [e.value for e in at.error]
    _run_to_completion(at)
    ex = experiments()
    eid = at.session_state["compare_experiment"]
    exp = ex.store.load(eid)
    assert [v.label for v in exp.variants] == ["T1 · openai:gpt-4.1", "T1 · anthropic:claude-sonnet-4-5",
                                               "T2 · openai:gpt-4.1", "T2 · anthropic:claude-sonnet-4-5"]
    assert len(ex.store.cells(eid)) == 80
    at.session_state["compare_tab"] = "Vote (blind)"
    at.run()
    for _ in range(12):
        match = at.session_state["vs_match"]
        # this voter prefers the short template: pick whichever side shows T2
        t2 = {v.variant_id for v in exp.variants if v.label.startswith("T2")}
        choice = "vote_left" if match.left in t2 and match.right not in t2 else (
            "vote_right" if match.right in t2 and match.left not in t2 else "vote_tie")
        at.button(key=choice).click()
        at.run()
    at.session_state["compare_tab"] = "Leaderboard"
    at.run()
    verdict = next(m.value for m in [*at.success, *at.info] if m.value.startswith("Votes: "))
    assert "95% CI" in verdict
    board = at.dataframe[0].value
    assert board.iloc[0]["Variant"].startswith("T2") and board.iloc[0]["Cost per win"].startswith("$")


def _picker(at: AppTest):  # noqa: ANN202
    return next(s for s in at.selectbox if s.label == "Experiment")


def _cap_input(at: AppTest):  # noqa: ANN202
    return next(n for n in at.number_input if n.label.startswith("Cost cap, USD (0 = none)"))


def _create_with_cap(at: AppTest, name: str, cap: float) -> str:
    at.text_input(key="new_name").set_value(name)
    at.radio(key="new_kind").set_value("Single prompt")
    at.run()
    at.text_area(key="new_prompt").set_value("A lighthouse keeper finds a message")
    at.number_input(key="new_cap").set_value(cap)
    at.button(key="new_create").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    created = experiments().store.list()
    return created[created.name == name].experiment_id.iloc[0]


def test_switching_between_three_experiments_never_writes_one_caps_value_into_another(page_env: Path) -> None:
    at = _page()
    caps = {_create_with_cap(at, "cap one", 0.03): Decimal("0.03"),
            _create_with_cap(at, "cap two", 1.0): Decimal("1"),
            _create_with_cap(at, "cap three", 0.02): Decimal("0.02")}
    ids = list(caps)
    for eid in [ids[0], ids[1], ids[2], ids[0], ids[2], ids[1], ids[0]]:
        _picker(at).set_value(eid)
        at.run()
        assert not at.exception, at.exception
        shown = _cap_input(at).value
        assert Decimal(str(shown)) == caps[eid], f"{eid} shows cap {shown}"
    table = experiments().store.log.query("SELECT experiment_id, cost_cap_usd FROM experiments")
    assert {r.experiment_id: Decimal(str(r.cost_cap_usd)) for r in table.itertuples()} == caps


def test_changing_the_cap_writes_it_to_the_experiment_on_screen_only(page_env: Path) -> None:
    at = _page()
    first = _create_with_cap(at, "cap one", 0.03)
    second = _create_with_cap(at, "cap two", 1.0)
    _cap_input(at).set_value(2.5)
    at.run()
    _picker(at).set_value(first)
    at.run()
    table = experiments().store.log.query("SELECT experiment_id, cost_cap_usd FROM experiments")
    assert {r.experiment_id: Decimal(str(r.cost_cap_usd)) for r in table.itertuples()} == {
        first: Decimal("0.03"), second: Decimal("2.5")}


def test_a_new_experiment_is_selected_and_runnable_after_create(page_env: Path) -> None:
    at = _page()
    _create_with_cap(at, "older", 1.0)
    at.run()
    newest = _create_with_cap(at, "newer", 1.0)
    at.run()
    assert _picker(at).value == newest
    assert not at.button(key="run_start").disabled
    assert not any("Nothing to run" in c.value for c in at.caption)


def test_the_matrix_shows_formatted_numbers_and_every_variant_best_rated_first(page_env: Path) -> None:
    at = _page()
    at.number_input(key="new_count").set_value(3)
    at.run()
    at.text_input(key="new_label_0").set_value("alpha")
    at.text_input(key="new_label_1").set_value("beta")
    at.text_input(key="new_label_2").set_value("zeta")
    at.radio(key="new_kind").set_value("Paste CSV")
    at.run()
    at.text_area(key="new_csv_text").set_value(FIVE_ROWS)
    at.button(key="new_create").click()
    at.run()
    _run_to_completion(at)
    ex = experiments()
    eid = at.session_state["compare_experiment"]
    for input_id in range(1, 6):                  # zeta beats both, beta beats alpha
        ex.store.add_vote(eid, input_id, "v3", "v1", "left")
        ex.store.add_vote(eid, input_id, "v3", "v2", "left")
        ex.store.add_vote(eid, input_id, "v2", "v1", "left")
    at.session_state["compare_tab"] = "Matrix"
    at.run()
    matrix, per_variant = at.dataframe[0].value, at.dataframe[1].value
    assert list(matrix.columns) == ["Prompt", "Votes", "zeta", "beta", "alpha"]   # not alphabetical
    assert list(per_variant.Variant) == ["zeta", "beta", "alpha"]
    for value in per_variant["Mean latency"]:
        assert re.fullmatch(r"[\d,]+ ms", value), value
    for value in per_variant["Cost per call"]:
        assert re.fullmatch(r"\$0\.\d{2,}|\$\d+\.\d\d", value) and len(value.split(".")[1].lstrip("0")) <= 3, value
    assert per_variant["Errors"].tolist() == ["0.0 %"] * 3
    at.session_state["compare_tab"] = "Leaderboard"
    at.run()
    board, prob = at.dataframe[0].value, at.dataframe[1].value
    assert list(board.Variant) == ["zeta", "beta", "alpha"] and list(prob.columns) == ["zeta", "beta", "alpha"]
    chart = at.get("plotly_chart")[0].proto.spec
    assert '"showlegend"' not in chart or '"showlegend":false' not in chart.replace(" ", "")
    assert '"mode":"markers+text"' not in chart.replace(" ", ""), "labels beside points overlap near $0"


def test_checks_typed_in_the_form_colour_the_matrix_and_give_pass_rates_in_the_leaderboard(page_env: Path) -> None:
    at = _page()
    at.text_area(key="new_checks").set_value("contains: gpt-4.1\nmax_length: 5000")
    _create(at)
    assert not at.error, [e.value for e in at.error]
    _run_to_completion(at)
    ex = experiments()
    eid = at.session_state["compare_experiment"]
    assert [a.label for a in ex.store.load(eid).assertions] == ["contains: gpt-4.1", "max_length: 5000"]
    at.session_state["compare_tab"] = "Matrix"
    at.run()
    matrix = at.dataframe[0].value
    cells = matrix[["openai:gpt-4.1", "terse"]]
    assert cells["openai:gpt-4.1"].str.startswith("[2/2 checks] ✅").all()
    assert cells["terse"].str.startswith("[1/2 checks] ✅").all()       # its answers come from gemini
    assert any(c.value.startswith("Checks: contains: gpt-4.1, max_length: 5000. Green") for c in at.caption)
    for input_id in range(1, 4):
        ex.store.add_vote(eid, input_id, "v1", "v2", "left")
    at.session_state["compare_tab"] = "Leaderboard"
    at.run()
    board = at.dataframe[0].value.set_index("Variant")
    assert board.loc["openai:gpt-4.1", "Checks passed"] == "100.0 %" and board.loc["terse", "Checks passed"] == "50.0 %"


def test_a_mistyped_check_is_refused_with_its_line_and_nothing_is_stored(page_env: Path) -> None:
    at = _page()
    at.text_area(key="new_checks").set_value("json\nlenght: 5")
    _create(at)
    assert [e.value for e in at.error] == ["Checks line 2: 'lenght: 5' is not a check (kinds: contains, "
                                           "not_contains, regex, max_length, json, rubric; e.g. 'contains: "
                                           "lighthouse')"]
    assert experiments().store.list().empty
