"""Calls: every logged request, searchable, and everything about the one you select."""
from __future__ import annotations

import hashlib

import streamlit as st

from taelio_core import analytics as A
from ui.empty_state import open_analytics_page
from ui.cache import cached
from ui.calls_search import list_caption, render_search_older, search_scope
from ui.text import code_span, cost_text, escape_markdown
from ui.trace_view import render_trace, trace_from_detail

PAGE_SIZE = 200
PREFER = "calls_prefer"     # "row" or "typed": which way of opening a request the user used last


def prefer(way: str):  # noqa: ANN201 - a widget callback
    return lambda: st.session_state.__setitem__(PREFER, way)


engine, filters = open_analytics_page(
    "Calls", "every request with its tier, task, provider, status, attempts, cost and latency, and each one's "
             "full routing trace")
c1, c2, c3, c4 = st.columns([3, 2, 2, 1], vertical_alignment="bottom")
search = c1.text_input("Search", key="calls_search",
                       placeholder="Text in the prompt, output or error, a provider, a model, or a request id",
                       help=f"Matches {A.SEARCH_MATCHES}.")
statuses = c2.multiselect("Status", ["ok", "failed", "truncated", "rejected"], key="calls_status",
                          placeholder="Any status")
user = c3.text_input("User", key="calls_user", placeholder="An API user (a token's sub)",
                     help="Requests made through the HTTP API carry the user of their token.")
page_no = c4.number_input("Page", min_value=1, value=1, step=1, key="calls_page")
# A search covers the newest slice of the range first (a full one reads every prompt): the caption says which.
window, scope = search_scope(engine, filters, search, tuple(statuses), user)
rows, total = cached(engine, A.list_requests, filters, search=search, statuses=tuple(statuses),
                     limit=PAGE_SIZE, offset=(int(page_no) - 1) * PAGE_SIZE, user=user,
                     search_since=window.since if window else None)
pages = max(1, -(-total // PAGE_SIZE))
st.caption(list_caption(total=total, page_no=int(page_no), pages=pages, window=window))
render_search_older(window, scope)

# The table's key names the query it shows: a new search, filter or page starts with nothing selected,
# so a row number picked in the old result never opens a different request in the new one.
query = hashlib.sha1(repr((filters, search, tuple(statuses), user, int(page_no))).encode()).hexdigest()[:12]
picked: list[int] = []
if rows.empty and total:
    st.info(f"Page {int(page_no)} is past the last page ({pages:,}): lower the page number.")
elif rows.empty:
    st.info("No request matches this search and filter" + (" in the searched period" if window and not window.whole
                                                             else "") +
            ". Clear the search, pick other statuses, or widen the filter in the sidebar.")
else:
    # Cost as text, as everywhere else: "–" where a failed request was billed nothing (never "$0" or a
    # grid's "None"), "unpriced" where tokens were used without a known price.
    cost = [cost_text(None if c != c else c, status=s, tokens=int(i) + int(o))
            for c, s, i, o in zip(rows["cost_usd"], rows["status"], rows["input_tokens"], rows["output_tokens"])]
    table = rows.assign(attempts=rows["n_attempts"], provider=rows["provider"].fillna("none served"),
                        model=rows["model"].fillna("–"), cost=cost, prompt=rows["prompt"].fillna("(hash only)"),
                        error=rows["error"].fillna(""))
    selection = st.dataframe(
        table, hide_index=True, width="stretch", height=420, on_select=prefer("row"), selection_mode="single-row",
        key=f"calls_table_{query}",
        column_order=["ts", "tier", "task", "prompt", "provider", "model", "status", "attempts", "cost", "latency_ms",
                      "error", "source", "user_id", "request_id"],
        column_config={"ts": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                       "cost": st.column_config.TextColumn("cost"),
                       "latency_ms": st.column_config.NumberColumn("latency", format="%.0f ms"),
                       "prompt": st.column_config.TextColumn("prompt", width="medium"),
                       "error": st.column_config.TextColumn("error", width="medium",
                                                            help="The whole error is under the request's detail"),
                       "user_id": st.column_config.TextColumn("user"),
                       "request_id": st.column_config.TextColumn("request id")})
    picked = [i for i in selection.selection.rows if 0 <= i < len(rows)]
typed = st.text_input("Or open a request by id", key="calls_open", on_change=prefer("typed"),
                      placeholder="A request id, e.g. one printed by taelio generate").strip()
# The one the user chose last: a pasted id wins over a row selected earlier, and a row selected later wins back.
use_typed = typed and (not picked or st.session_state.get(PREFER) == "typed")
request_id = typed if use_typed else (str(rows.iloc[picked[0]]["request_id"]) if picked else "")
if not request_id:
    st.stop()
detail = cached(engine, A.request_detail, request_id)
if detail is None:
    st.warning(f"No request with id {code_span(request_id)} in the log.")
    st.stop()

with st.container(border=True):
    render_trace(trace_from_detail(detail), title="Request detail")
    req = detail.request
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Prompt**")
        st.markdown(escape_markdown(req["prompt"]) if req.get("prompt") else
                    f"_Stored as a hash only:_ `{req.get('prompt_sha256')}`")
    with c2:
        st.markdown("**Output**")
        if req.get("output"):
            st.markdown(escape_markdown(req["output"]))
        else:
            st.caption("No output was stored (the request failed, or the log keeps hashes only).")
    if len(detail.related):
        st.markdown("**Same flow** (one parent id)")
        st.dataframe(detail.related, hide_index=True, width="stretch")
