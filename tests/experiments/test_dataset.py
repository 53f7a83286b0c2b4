"""CSV inputs: every problem named by row and column; templates checked against the columns."""
from __future__ import annotations

import pytest

from taelio_core.errors import InputError
from taelio_core.experiments import ExperimentSpec, VariantSpec, parse_csv, single_prompt


def test_a_good_csv_gives_rows_with_defaults_and_extra_columns() -> None:
    rows = parse_csv(b"\xef\xbb\xbfPrompt,Genre,audience\nA lighthouse,Mystery,kids\n\n\"A robot, a chef\",,adults\n")
    assert rows == [{"prompt": "A lighthouse", "genre": "Mystery", "audience": "kids", "tone": "any"},
                    {"prompt": "A robot, a chef", "genre": "any", "audience": "adults", "tone": "any"}]


def test_semicolon_separated_files_from_european_excel_work() -> None:
    assert parse_csv("prompt;tone\nA lighthouse;dark\n")[0]["tone"] == "dark"


@pytest.mark.parametrize(("data", "message"), [
    ("genre\nMystery\n", "row 1 (the header) has no 'prompt' column (found: genre)"),
    ("prompt,genre\nok,x\n,Comedy\n", "row 3, column 'prompt': the cell is empty"),
    ("prompt,genre\nok,x\ntoo,many,cells\n", "row 3 has 3 cells; the header has 2"),
    ("prompt,genre\nok,x\nfine,bad\x07bell\n", "row 3, column 'genre': contains a control character (U+0007)"),
    ("prompt,prompt\na,b\n", "row 1, column 2: 'prompt' appears twice"),
    ("prompt,my column\na,b\n", "row 1, column 2 ('my column')"),
    ("prompt\n", "has a header but no rows"),
    ("", "is empty"),
])
def test_bad_csvs_name_the_row_and_column(data: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_csv(data, source="ideas.csv")
    assert message in str(err.value)
    assert str(err.value).startswith("ideas.csv")


def test_non_utf8_bytes_are_refused_with_a_hint() -> None:
    with pytest.raises(InputError, match="not UTF-8 .*byte 11.*CSV UTF-8"):
        parse_csv("prompt\ncaf\xe9 noir\n".encode("latin-1"))


def test_single_prompt_is_checked_like_any_input() -> None:
    assert single_prompt("  A lighthouse ")[0] == {"prompt": "A lighthouse", "genre": "any", "tone": "any"}
    with pytest.raises(InputError, match="prompt is empty"):
        single_prompt("   ")


def test_templates_must_only_use_columns_the_inputs_have(experiments) -> None:
    rows = parse_csv("prompt,audience\nA lighthouse,kids\n")
    ok = ExperimentSpec(name="t", variants=[VariantSpec(model="sim:a", user="For {audience}: {prompt}"),
                                            VariantSpec(model="sim:b")])
    exp = experiments.store.create(ok, rows)
    assert exp.variants[0].render(exp.inputs[0].variables, "idea").user == "For kids: A lighthouse"
    assert exp.variants[1].user_template == "Premise: {prompt}\nGenre: {genre}"   # the task's default
    bad = ExperimentSpec(name="t", variants=[VariantSpec(model="sim:a", user="For {reader}: {prompt}"),
                                             VariantSpec(model="sim:b")])
    with pytest.raises(InputError, match=r"variant 1: the user template uses \{reader\}, which the inputs lack"):
        experiments.store.create(bad, rows)
    broken = ExperimentSpec(name="t", variants=[VariantSpec(model="sim:a"), VariantSpec(model="sim:b", system="{")])
    with pytest.raises(InputError, match="variant 2: the system template is broken"):
        experiments.store.create(broken, rows)
    unknown = ExperimentSpec(name="t", variants=[VariantSpec(model="sim:a"), VariantSpec(model="nope:b")])
    with pytest.raises(InputError, match="variant 2: unknown provider 'nope'"):
        experiments.store.create(unknown, rows)
    assert experiments.store.list().shape[0] == 1     # the refused ones left nothing behind


def test_saved_sets_round_trip_and_unknown_names_are_named(experiments) -> None:
    rows = parse_csv("prompt\none\ntwo\n")
    experiments.store.save_set("pilot", rows)
    assert experiments.store.load_set("pilot") == rows
    with pytest.raises(InputError, match="no saved input set 'pliot' \\(sets: pilot\\)"):
        experiments.store.load_set("pliot")


def test_cross_variants_is_every_template_on_every_model() -> None:
    from taelio_core.experiments import cross_variants
    specs = cross_variants({"T1": "{prompt}", "T2": "Briefly: {prompt}"}, ["sim:a", "sim:b"], temperature=0.3)
    assert [(s.label, s.model, s.user) for s in specs] == [
        ("T1 · sim:a", "sim:a", "{prompt}"), ("T1 · sim:b", "sim:b", "{prompt}"),
        ("T2 · sim:a", "sim:a", "Briefly: {prompt}"), ("T2 · sim:b", "sim:b", "Briefly: {prompt}")]
    with pytest.raises(InputError, match="3 templates × 3 models is 9 variants; the limit is 8"):
        cross_variants({"a": "x", "b": "y", "c": "z"}, ["sim:a", "sim:b", "sim:c"])
    with pytest.raises(InputError, match="at least one prompt template and one model"):
        cross_variants({"a": "x"}, [])
