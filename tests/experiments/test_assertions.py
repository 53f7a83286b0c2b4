"""Checks on every answer: written one per line, stored with the experiment, pass/fail per cell and per variant."""
from __future__ import annotations

import pytest

from taelio_core.errors import InputError
from taelio_core.experiments import ExperimentSpec, Experiments, VariantSpec, parse_csv
from taelio_core.experiments.assertions import Assertion, check, parse_checks, parse_grade
from taelio_core.routing.generation import Completion
from tests.experiments.virtual_time import run_virtual


def _a(kind: str, value: str = "", variants: tuple[str, ...] = ()) -> Assertion:
    return Assertion(assertion_id="a1", kind=kind, value=value, variants=variants)


def test_checks_are_written_one_per_line_and_mistakes_name_the_line() -> None:
    specs = parse_checks("contains: {genre}\n\n# a comment\nnot_contains: As an AI\n[v1, v3] regex: ^[A-Z]\n"
                         "max_length: 400\njson\nrubric: One paragraph")
    assert [(s.kind, s.value, s.variants) for s in specs] == [
        ("contains", "{genre}", []), ("not_contains", "As an AI", []), ("regex", "^[A-Z]", ["v1", "v3"]),
        ("max_length", "400", []), ("json", "", []), ("rubric", "One paragraph", [])]
    with pytest.raises(InputError, match=r"Checks line 2: 'contians: x' is not a check \(kinds: contains"):
        parse_checks("json\ncontians: x", source="Checks")
    with pytest.raises(InputError, match="checks line 1: max_length needs a whole number of characters, not 'ten'"):
        parse_checks("max_length: ten")
    with pytest.raises(InputError, match=r"checks line 1: the regex '\(' is broken"):
        parse_checks("regex: (")
    with pytest.raises(InputError, match="checks line 1: 'contains' needs a value"):
        parse_checks("contains")


def test_each_kind_of_check_passes_and_fails_with_a_reason() -> None:
    row = {"prompt": "a lighthouse", "genre": "Mystery"}
    assert check(_a("contains", "{genre}"), "A mystery at sea", row) == (True, "")
    assert check(_a("contains", "{genre}"), "A comedy", row) == (False, "does not contain 'Mystery'")
    assert check(_a("not_contains", "as an ai"), "As an AI, I cannot", row) == (False, "contains 'as an ai'")
    assert check(_a("regex", r"^\d{2,3} words"), "120 words exactly", row) == (True, "")   # {2,3} stays a regex
    assert check(_a("max_length", "5"), "toolong", row) == (False, "7 characters, over 5")
    assert check(_a("json"), '{"title": "x"}', row) == (True, "")
    assert check(_a("json"), "{title: x}", row)[0] is False
    assert check(_a("rubric", "vivid"), "anything", row) == (None, "graded by the LLM judge")
    assert parse_grade("GRADE: PASS because...") is True and parse_grade("**GRADE: fail**") is False
    assert parse_grade("I think it is fine") is None


@pytest.fixture
def checked(experiments: Experiments):  # noqa: ANN201
    spec = ExperimentSpec(name="checked", variants=[VariantSpec(model="sim:a", label="alpha"),
                                                    VariantSpec(model="sim:b", label="beta", user="{prompt}")],
                          assertions=parse_checks("contains: sim:a\n[v2] max_length: 20\nrubric: Vivid"))
    exp = experiments.store.create(spec, parse_csv("prompt\n" + "\n".join(f"idea {i}" for i in range(3))))
    run_virtual(experiments.runner.arun(exp.experiment_id))
    return exp


def test_checks_are_stored_with_the_experiment_and_scored_per_cell_and_per_variant(experiments, checked) -> None:  # noqa: ANN001
    again = experiments.store.load(checked.experiment_id)
    assert [a.label for a in again.assertions] == ["contains: sim:a", "[v2] max_length: 20", "rubric: Vivid"]
    res = experiments.results(checked.experiment_id, n_boot=20)
    m = res.matrix.set_index(["input_id", "variant"])
    # the simulator signs its answers "[simulated sim:a] ...": alpha passes, beta fails and is over 20 characters
    assert (m.loc[(1, "v1"), "checks_passed"], m.loc[(1, "v1"), "checks_total"]) == (1, 1)
    assert (m.loc[(1, "v2"), "checks_passed"], m.loc[(1, "v2"), "checks_total"]) == (0, 2)
    assert "contains: sim:a (does not contain 'sim:a')" in m.loc[(1, "v2"), "checks_failed"]
    rates = res.summary.set_index("variant").assertion_pass_rate
    assert rates.to_dict() == {"v1": 1.0, "v2": 0.0}
    assert res.as_dict()["checks"][1] == {"id": "a2", "check": "[v2] max_length: 20"}


def test_a_rubric_is_graded_by_the_judge_chain_once_per_answer_and_charged(experiments, checked, sim) -> None:  # noqa: ANN001
    real = sim.complete

    async def grader(model, request):  # noqa: ANN001, ANN202
        if request.variable("answer"):       # the rubric grader: pass alpha's answers, fail beta's
            done = await real(model, request)
            verdict = "PASS" if "sim:a" in request.variable("answer") else "FAIL"
            return Completion(text=f"GRADE: {verdict}\nreason", usage=done.usage, finish_reason="stop",
                              response_model=done.response_model)
        return await real(model, request)

    sim.complete = grader  # type: ignore[method-assign]
    assert len(experiments.judge.pending_grades(checked)) == 6
    before = experiments.store.spent(checked.experiment_id)
    done = run_virtual(experiments.judge.arun(checked.experiment_id))
    assert "graded 6 answers against their rubric" in done.message
    assert experiments.judge.pending_grades(checked) == []
    grades = experiments.store.grades(checked.experiment_id)
    assert len(grades) == 6 and (grades.cost_usd > 0).all()
    assert experiments.store.spent(checked.experiment_id) > before
    rates = experiments.results(checked.experiment_id, n_boot=20).summary.set_index("variant").assertion_pass_rate
    assert rates.to_dict() == {"v1": 1.0, "v2": 0.0}
    m = experiments.results(checked.experiment_id, n_boot=20).matrix.set_index(["input_id", "variant"])
    assert m.loc[(1, "v1"), "checks_total"] == 2 and m.loc[(1, "v2"), "checks_total"] == 3


def test_a_check_naming_a_variant_the_experiment_lacks_is_refused(experiments) -> None:  # noqa: ANN001
    spec = ExperimentSpec(name="x", variants=[VariantSpec(model="sim:a"), VariantSpec(model="sim:b")],
                          assertions=parse_checks("[v9] json"))
    with pytest.raises(InputError, match=r"check 1: no variant 'v9' \(variants: v1, v2\)"):
        experiments.store.create(spec, parse_csv("prompt\nx\n"))
    assert experiments.store.list().empty
