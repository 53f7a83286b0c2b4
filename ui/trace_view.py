"""The routing trace of one request, drawn as a timeline.

Used for a fresh generation (a ``GenerationResult``) and for a logged one
(``analytics.RequestDetail``); both are first turned into the same plain
dicts, so the Generate and Calls pages show a request the same way:
the chain with what happened to each entry, the skipped entries with their
reasons, every attempt (provider, model, status, the error in plain words,
latency, time to first token, tokens, cost) and the totals.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from taelio_core.analytics import RequestDetail
from taelio_core.errors import PLAIN_WORDS
from taelio_core.routing.trace import GenerationResult, retry_words
from ui.text import cost_text, escape_markdown, fmt_ms

__all__ = ["TraceData", "render_trace", "trace_from_detail", "trace_from_result"]

TraceData = dict[str, Any]
_MARK = {"ok": "✅", "error": "❌", "truncated": "✂️", "cancelled": "⏹", "skipped": "⏭", "unused": "○"}


def trace_from_result(result: GenerationResult) -> TraceData:
    data = result.as_dict()
    data["cost_usd"] = result.cost_usd
    return data


def trace_from_detail(detail: RequestDetail) -> TraceData:
    req = detail.request
    attempts = detail.attempts.astype(object).where(detail.attempts.notna(), None).to_dict("records")
    cost = req.get("cost_usd")
    return {"request_id": req["request_id"], "tier": req["tier"], "task": req["task"], "status": req["status"],
            "provider": req.get("provider"), "model": req.get("model"), "error": req.get("error"),
            "latency_ms": req.get("latency_ms"), "ttft_ms": req.get("ttft_ms"),
            "input_tokens": req.get("input_tokens"), "output_tokens": req.get("output_tokens"),
            "cost_usd": None if cost is None or pd.isna(cost) else cost, "chain": detail.chain,
            "skipped": detail.skipped, "attempts": attempts, "source": req.get("source"),
            "pinned_provider": req.get("pinned_provider")}


def _entry_marks(data: TraceData) -> list[str]:
    skipped = {(s["provider"], s["model"]): s["reason"] for s in data["skipped"]}
    tried: dict[tuple[str, str], str] = {}
    for a in data["attempts"]:
        tried[(a["provider"], a["model"])] = a["status"]
    marks = []
    for i, entry in enumerate(data["chain"], start=1):
        key = (entry["provider"], entry["model"])
        state = tried.get(key) or ("skipped" if key in skipped else "unused")
        marks.append(f"{_MARK.get(state, '•')} {i}. `{entry['provider']}:{entry['model']}`")
    return marks


def _attempt_rows(data: TraceData) -> pd.DataFrame:
    rows = []
    for a in data["attempts"]:
        error_type = a.get("error_type")
        plain = PLAIN_WORDS.get(error_type, error_type) if error_type else ""
        detail = a.get("error") or ""
        http = a.get("http_status")
        if plain and http is not None and http == http:
            plain = f"{plain} (HTTP {int(http)})"
        rows.append({
            "#": a["n"], "provider:model": f"{a['provider']}:{a['model']}", "status": a["status"],
            "retry": retry_words(a.get("retry"), a.get("wait_ms")),
            "error": f"{plain}: {detail}" if plain and detail else plain,
            "latency": fmt_ms(a.get("latency_ms")), "TTFT": fmt_ms(a.get("ttft_ms")),
            "tokens in/out": f"{a.get('input_tokens') or 0:,} / {a.get('output_tokens') or 0:,}",
            "cost": cost_text(a.get("cost_usd"), status=a["status"],
                              tokens=(a.get("input_tokens") or 0) + (a.get("output_tokens") or 0)),
        })
    return pd.DataFrame(rows, columns=["#", "provider:model", "status", "retry", "error", "latency", "TTFT",
                                       "tokens in/out", "cost"])


def render_trace(data: TraceData, *, title: str = "Routing trace") -> None:
    st.markdown(f"##### {title}")
    simulated = any(e.get("simulated") for e in data["chain"])
    st.caption(f"Chain for tier **{escape_markdown(str(data['tier']))}**, "
               f"task **{escape_markdown(str(data['task']))}**" + (" (simulated providers)" if simulated else "")
               + f" · request `{data['request_id']}`")
    st.markdown(" → ".join(_entry_marks(data)) or "No chain recorded.")
    if data.get("pinned_provider"):
        st.markdown(f"📌 Pinned to provider `{data['pinned_provider']}`: only its entries were tried.")
    for skip in data["skipped"]:
        st.markdown(f"⏭ `{skip['provider']}:{skip['model']}` skipped: {escape_markdown(str(skip['reason']))}")
    if data["attempts"]:
        rows = _attempt_rows(data)
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={"#": st.column_config.NumberColumn(width="small"),
                                    "error": st.column_config.TextColumn(width="medium")})
        errors = rows[rows["error"] != ""]
        if len(errors):
            # A cell shows the start of a long error; here each one reads whole (as plain text, never Markdown).
            with st.expander(f"Errors in full ({len(errors)})", icon=":material/error:"):
                for row in errors.to_dict("records"):
                    st.caption(f"Attempt {row['#']} · {row['provider:model']}")
                    st.code(row["error"], language=None, wrap_lines=True)
    else:
        st.caption("No provider was tried.")
    served = f"`{data['provider']}:{data['model']}`" if data.get("provider") else "nobody"
    tokens = (data.get("input_tokens") or 0) + (data.get("output_tokens") or 0)
    icon = _MARK.get("ok" if data["status"] == "ok" else "error", "")
    st.markdown(f"{icon} **{data['status']}** · served by {served} · {len(data['attempts'])} attempt(s), "
                f"{len(data['skipped'])} skipped · total {fmt_ms(data.get('latency_ms'))} · first token "
                f"{fmt_ms(data.get('ttft_ms'))} · {data.get('input_tokens') or 0:,} in / "
                f"{data.get('output_tokens') or 0:,} out tokens · "
                f"{cost_text(data.get('cost_usd'), status=data['status'], tokens=tokens)}")
    if data.get("error") and data["status"] != "ok":
        st.error(escape_markdown(str(data["error"])), icon=":material/error:")
