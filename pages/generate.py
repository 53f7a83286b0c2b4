"""Generate: write an idea, a story, or both, and see how the request was routed."""
from __future__ import annotations

import streamlit as st

from taelio_core.routing.inputs import Inputs
from ui.shell import get_engine
from ui.generate_flow import FULL, flow_tasks, recent, run_generation, show_generation

engine = get_engine()
policy = engine.policy

st.title("Generate")
st.caption("Each request walks its tier's chain of providers until one answers; the trace below shows how.")
if engine.mode == "demo":
    st.info("Demo mode: the offline simulator answers for every provider, so the text is marked "
            "[simulated] and nothing costs money.", icon=":material/science:")

tasks = {name: (cfg.label or name) for name, cfg in policy.model.tasks.items()}
if flow_tasks(policy):
    tasks[FULL] = "Idea → story (full flow)"

left, right = st.columns(2)
tier = left.selectbox("Tier", policy.tiers, format_func=lambda t: policy.tier(t).label or t, key="gen_tier")
task = right.selectbox("Task", list(tasks), format_func=tasks.get, key="gen_task",
                       index=list(tasks).index(FULL) if FULL in tasks else 0)

with st.form("generate"):
    prompt = st.text_area("Prompt", placeholder="A lighthouse keeper finds a message in a bottle…",
                          max_chars=32000, key="gen_prompt")
    c1, c2, c3 = st.columns(3)
    genre = c1.text_input("Genre", placeholder="e.g. Mystery", key="gen_genre")
    tone = c2.text_input("Tone", placeholder="e.g. Dark and atmospheric", key="gen_tone")
    provider = None
    if policy.tier(tier).allow_provider_override:
        chain_tasks = [task] if task in policy.tasks else policy.tasks
        names = list(dict.fromkeys(e.provider for t in chain_tasks for e in policy.chain(tier, t)))
        chosen = c3.selectbox("Provider", ["Route automatically", *names], key="gen_provider",
                              help=f"The {tier} tier may pin one provider from its chain.")
        provider = None if chosen == "Route automatically" else chosen
    else:
        c3.caption(f"The {tier} tier routes automatically.")
    submitted = st.form_submit_button("Generate", type="primary", icon=":material/auto_awesome:")

if submitted:
    if not prompt.strip():
        st.error("Prompt: write a premise first.")
    else:
        with st.container(border=True):
            run_generation(engine, tier=tier, task=task,
                           inputs=Inputs(prompt=prompt, genre=genre, tone=tone), provider=provider)

history = recent()
if history:
    st.divider()
    st.subheader("Recent generations")
    labels = {i: g.label for i, g in enumerate(history)}
    pick = st.selectbox("Open again", list(labels), format_func=labels.get, index=None,
                        placeholder="Choose a generation from this session", key="gen_reopen")
    if pick is not None:
        with st.container(border=True):
            show_generation(history[pick])
