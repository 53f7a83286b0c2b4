"""The Compare page's Streamlit pieces: opening the engine, the create form, and the run panel.

Everything that decides anything lives in ``taelio_core.experiments``; this
module turns widgets into its calls and its errors into one sentence. Runs
happen on the core's background loop; a fragment polls the handle every
half second for the progress bar, the ETA and the Cancel button.
"""
from __future__ import annotations

from decimal import Decimal

import streamlit as st
from pydantic import ValidationError

from taelio_core.errors import TaelioError
from taelio_core.experiments.assertions import parse_checks
from taelio_core.formatting import money
from taelio_core.experiments import (
    Experiments,
    ExperimentSpec,
    RunHandle,
    VariantSpec,
    cross_variants,
    parse_csv,
    single_prompt,
)
from ui.shell import get_engine

__all__ = ["create_form", "experiments", "pick_experiment", "run_panel"]

CURRENT = "compare_experiment"


def experiments() -> Experiments:
    """The experiments of the dashboard's shared engine (``ui.cache``), inside the app shell."""
    eng = get_engine()
    return Experiments.open(eng.router, eng.log)


def _model_choices(ex: Experiments) -> list[str]:
    policy = ex.store.policy
    seen: dict[str, None] = {}
    for chain in policy.chains.values():
        for entry in chain:
            seen[entry.ref] = None
    return list(seen)


def create_form(ex: Experiments) -> None:
    """Name, variants, inputs, cap: validated as a whole, stored only when all of it is right."""
    policy = ex.store.policy
    choices = _model_choices(ex)
    name = st.text_input("Experiment name", key="new_name", placeholder="e.g. Terse prompt vs default, two providers")
    c1, c2, c3 = st.columns(3)
    tier = c1.selectbox("Charged to tier", policy.tiers, index=min(1, len(policy.tiers) - 1), key="new_tier")
    task = c2.selectbox("Task (default templates)", policy.tasks, key="new_task")
    mode = c3.radio("Variants", ["One by one", "Templates × models"], key="new_mode",
                    help="Templates × models runs every prompt template on every model (2 × 2 = 4 variants).")
    if mode == "One by one":
        specs = _variants_one_by_one(policy, tier, task, choices)
    else:
        specs = _variants_crossed(policy, tier, task, choices)
    kind = st.radio("Inputs", ["Single prompt", "Upload CSV", "Paste CSV", "Saved set"], horizontal=True,
                    key="new_kind")
    rows_source = _inputs_widget(ex, kind)
    save_as = st.text_input("Also save these inputs as a set named (optional)", key="new_save_set")
    checks = st.text_area("Checks on every answer (optional, one per line)", key="new_checks", height=90,
                          placeholder="contains: {genre}\nnot_contains: As an AI\nmax_length: 600\njson\n"
                                      "rubric: One paragraph that ends on a question\n[v2] regex: ^[A-Z]",
                          help="contains, not_contains, regex, max_length, json, or rubric (graded by the LLM judge "
                               "run). [v1,v3] in front limits a check to those variants; {prompt}, {genre} and "
                               "other input columns are filled in per input.")
    c1, c2 = st.columns(2)
    cap = c1.number_input("Cost cap, USD (0 = no cap)", min_value=0.0, value=1.0, step=0.5, key="new_cap")
    concurrency = c2.slider("Inputs in flight at once", 1, 16, 4, key="new_concurrency")
    if not st.button("Create experiment", type="primary", key="new_create"):
        return
    try:
        rows = rows_source()
        assertions = parse_checks(checks, source="Checks")
        spec = ExperimentSpec(name=name or "Untitled experiment", tier=tier, task=task, concurrency=concurrency,
                              assertions=assertions,
                              cost_cap_usd=Decimal(str(cap)) if cap > 0 else None,
                              inputs_kind={"Single prompt": "prompt", "Saved set": "set"}.get(kind, "csv"),
                              variants=specs())
        experiment = ex.store.create(spec, rows)
        if save_as.strip():
            ex.store.save_set(save_as, rows)
    except ValidationError as e:
        err = e.errors()[0]
        st.error(f"{' '.join(str(p) for p in err['loc'])}: {err['msg']}")
        return
    except TaelioError as e:
        st.error(str(e))
        return
    st.session_state[CURRENT] = experiment.experiment_id
    st.success(f"Created {experiment.name} ({experiment.experiment_id}): {len(experiment.variants)} variants × "
               f"{len(experiment.inputs)} inputs. {ex.runner.estimate(experiment.experiment_id).sentence()}")


def _variants_one_by_one(policy, tier: str, task: str, choices: list[str]):  # noqa: ANN001, ANN202
    task_cfg = policy.task(task)
    base = policy.settings(tier, task)
    count = st.number_input("Number of variants", min_value=2, max_value=8, value=2, key="new_count")
    specs = []
    for i in range(int(count)):
        with st.container(border=True):
            a, b, c = st.columns([2, 3, 1])
            label = a.text_input(f"Variant {i + 1} label", key=f"new_label_{i}", placeholder=f"variant {i + 1}")
            model = b.selectbox(f"Variant {i + 1} provider:model", choices, index=i % len(choices),
                                key=f"new_model_{i}")
            temp = c.number_input("Temperature", 0.0, 2.0, float(base.temperature), 0.1, key=f"new_temp_{i}")
            user = st.text_area(f"Variant {i + 1} prompt template", task_cfg.user, key=f"new_user_{i}", height=80,
                                help="Placeholders: {prompt}, {genre}, {tone} and any column of your CSV.")
            with st.expander("System prompt and token limit"):
                system = st.text_area("System prompt", task_cfg.system, key=f"new_system_{i}", height=80)
                max_tokens = st.number_input("Max output tokens", 1, 200_000, int(base.max_tokens), key=f"new_max_{i}")
            specs.append({"label": label, "model": model, "temperature": temp, "user": user, "system": system,
                          "max_tokens": int(max_tokens)})
    return lambda: [VariantSpec(**spec) for spec in specs]


def _variants_crossed(policy, tier: str, task: str, choices: list[str]):  # noqa: ANN001, ANN202
    models = st.multiselect("Models", choices, default=choices[:2], key="new_x_models")
    a, b = st.columns(2)
    first = a.text_area("Template T1", policy.task(task).user, key="new_x_t1", height=100)
    second = b.text_area("Template T2 (leave empty for one template)", "", key="new_x_t2", height=100,
                         placeholder="e.g. In two sentences: {prompt} ({genre})")
    temp = st.number_input("Temperature", 0.0, 2.0, float(policy.settings(tier, task).temperature), 0.1,
                           key="new_x_temp")
    templates = {"T1": first, **({"T2": second} if second.strip() else {})}
    st.caption(f"{len(templates)} template(s) × {len(models)} model(s) = {len(templates) * len(models)} variants")
    return lambda: cross_variants(templates, models, temperature=temp)


def _inputs_widget(ex: Experiments, kind: str):  # noqa: ANN202 - returns a thunk that may raise InputError
    if kind == "Single prompt":
        prompt = st.text_area("Prompt", key="new_prompt", placeholder="A lighthouse keeper finds a message")
        return lambda: single_prompt(prompt)
    if kind == "Upload CSV":
        upload = st.file_uploader("CSV with a 'prompt' column (genre, tone, others optional)", type=["csv"],
                                  key="new_csv")
        if upload is None:
            return lambda: (_ for _ in ()).throw(TaelioError("choose a CSV file to upload"))
        data, name = upload.getvalue(), upload.name
        return lambda: parse_csv(data, source=name)
    if kind == "Paste CSV":
        text = st.text_area("CSV text (first line: column names)", key="new_csv_text", height=140,
                            placeholder="prompt,genre\nA lighthouse keeper finds a message,Mystery")
        return lambda: parse_csv(text, source="the pasted CSV")
    names = ex.store.set_names()
    chosen = st.selectbox("Saved set", names, key="new_set", placeholder="no saved sets yet")
    return lambda: ex.store.load_set(chosen or "")


def pick_experiment(ex: Experiments) -> str | None:
    """The experiment on screen. The picker's own key holds it, so Create can select what it made."""
    listing = ex.store.list()
    if listing.empty:
        st.info("No experiments yet: create one with the form above.")
        return None
    ids = listing.experiment_id.tolist()
    names = dict(zip(ids, listing.name, strict=True))
    if st.session_state.get(CURRENT) not in ids:
        st.session_state.pop(CURRENT, None)        # deleted or from another log: fall back to the newest
    return st.selectbox("Experiment", ids, format_func=lambda i: f"{names[i]} ({i})", key=CURRENT)


def _save_cap(ex: Experiments, experiment_id: str, key: str) -> None:
    """Runs only when the user edits the cap widget, for the experiment that widget belongs to."""
    value = float(st.session_state[key] or 0)
    ex.store.set_cost_cap(experiment_id, Decimal(str(value)) if value > 0 else None)


def run_panel(ex: Experiments, experiment_id: str) -> None:
    """Estimate, cap, Run / Retry failed / Judge, and a live progress bar with ETA and Cancel."""
    experiment = ex.store.load(experiment_id)
    retry = st.checkbox("Also retry failed cells", key="run_retry")
    estimate = ex.runner.estimate(experiment_id, retry_failed=retry)
    spent = ex.store.spent(experiment_id)
    cap_text = "no cap" if experiment.cost_cap_usd is None else f"cap {money(experiment.cost_cap_usd)}"
    st.caption(f"Estimate: {estimate.sentence()} Spent so far {money(spent)} ({cap_text}).")
    handle: RunHandle | None = st.session_state.get("compare_run")
    busy = handle is not None and not handle.done
    c1, c2, c3 = st.columns(3)
    if c1.button("Run", type="primary", disabled=busy or estimate.cells == 0, key="run_start"):
        st.session_state["compare_run"] = ex.runner.start(experiment_id, retry_failed=retry)
        st.session_state["compare_run_kind"] = "run"
        st.rerun()
    reason = ex.judge.unavailable_reason()
    if reason is None:
        pairs = len(ex.judge.pending(experiment))
        grades = len(ex.judge.pending_grades(experiment))
        rubric = f" and {grades} answer{'s' if grades != 1 else ''} to grade against a rubric" if grades else ""
        st.caption(f"LLM judge: {pairs} pair{'s' if pairs != 1 else ''} to judge ({2 * pairs} calls, both orders)"
                   f"{rubric}, charged against the same cap.")
    if c2.button("Run the LLM judge", disabled=busy or reason is not None, key="run_judge",
                 help=reason or "Judges every pair of answers in both orders; only consistent verdicts count."):
        st.session_state["compare_run"] = ex.judge.start(experiment_id)
        st.session_state["compare_run_kind"] = "judge"
        st.rerun()
    # One widget per experiment, written back only from its own on_change: a value typed for one
    # experiment can never land on another when the picker moves (it once overwrote caps that way).
    cap_key = f"run_cap_{experiment_id}"
    c3.number_input("Cost cap, USD (0 = none)", min_value=0.0, step=0.5, key=cap_key,
                    value=float(experiment.cost_cap_usd or 0), on_change=_save_cap, args=(ex, experiment_id, cap_key))
    if handle is None:
        return
    if not handle.done:
        _progress(handle)
    elif handle.error:
        st.error(f"The run stopped: {handle.error}")
    elif handle.progress is not None:
        (st.success if handle.progress.state == "finished" else st.warning)(handle.progress.message)


@st.fragment(run_every=0.5)
def _progress(handle: RunHandle) -> None:
    """Polls a live run; drawn only while it runs, so a finished run leaves no timer behind."""
    if handle.done:
        st.rerun(scope="app")   # the whole page: new cells, spend, and the final message
    p = handle.progress
    kind = "Judging" if st.session_state.get("compare_run_kind") == "judge" else "Running"
    if p is None:
        st.progress(0.0, text=f"{kind}: starting…")
    else:
        eta = "" if p.eta_s is None else f", about {p.eta_s:.0f} s left"
        st.progress(p.fraction, text=f"{kind}: {p.run_done}/{p.run_total}{eta}; spent {money(p.spent_usd)}")
    if st.button("Cancel", key="run_cancel", shortcut="Esc"):
        handle.cancel()
        st.toast("Cancelling: calls in flight will finish and be kept.")
