"""The request list behind the Calls page, and everything about one request.

The list is filtered like every other view and searched in DuckDB, then
paged, so a log of millions of rows never reaches pandas whole. The page is a
top-N scan by time (DuckDB's dynamic filter on ``ts`` skips older row
groups); the match count comes from the exact hourly rollup unless a search
needs the text.

What a search matches (``SEARCH_MATCHES``, shown on the Calls page): the text
anywhere in the prompt, output, error, provider or model, ignoring case (a
plain substring: ``%`` and ``_`` are ordinary characters), or the start of a
request id or parent id. Why this shape: ``ILIKE ? ESCAPE '\\'`` (the old
search) runs DuckDB's general pattern matcher on every row, 4-5.5 s at 10M
requests; ``strpos(lower(text), lower(needle)) > 0`` is a plain substring
search (PostgreSQL runs it too), tested column by column inside the scan
(``_search_branches``). Ids are 32 unique
characters per row (a substring test of both ids was most of the remaining
time): ``starts_with`` on them is a prefix compare, and a pasted id or its
first characters (what users type) still finds the request.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from taelio_core.analytics import rollup
from taelio_core.analytics.filters import Filters
from taelio_core.analytics.rollup import Reader
from taelio_core.calllog import CallLog

__all__ = ["EXPORT_COLUMNS", "LIST_COLUMNS", "SEARCH_MATCHES", "RequestDetail", "export_requests", "list_requests",
           "request_detail", "requests_by_source"]

LIST_COLUMNS = ("ts", "request_id", "source", "tier", "task", "provider", "model", "status", "n_attempts",
                "fallback_depth", "cost_usd", "latency_ms", "ttft_ms", "input_tokens", "output_tokens",
                "parent_id", "user_id")
# Shown in the list only (not exported): the start of the prompt, and the error in full.
PROMPT_PREVIEW = 200
LIST_TEXT = (f"left(prompt, {PROMPT_PREVIEW}) AS prompt", "error")
# What the search box matches: these columns anywhere, ignoring case. ``provider`` and ``model`` are who
# served the request; the providers tried before it are in its attempts, not searched here.
SEARCHED = ("prompt", "output", "error", "provider", "model")
# And these from their start (as typed, or in lower case: Taelio's ids are lower-case hex).
SEARCHED_FROM_START = ("request_id", "parent_id")
SEARCH_MATCHES = ("the text anywhere in the prompt, output, error, provider or model (ignoring case), "
                  "or the start of a request id")


# Few distinct values (the rollup holds every one): which of them match is asked of the rollup, and the
# scan then tests equality, not text.
NAMED_BY_ROLLUP = ("provider", "model")


def _search_branches(r: Reader, text: str) -> list[tuple[str, list[Any]]]:
    """A search for ``text`` (as ``SEARCH_MATCHES`` says) as disjoint conditions, one per column searched.

    Why not one ``OR``: DuckDB evaluates a filter on one column inside the scan, on compressed data;
    an ``OR`` across columns is evaluated after decompressing all of them, 5-10x slower at 10M rows.
    Each branch keeps its own column's test and drops the rows an earlier branch matched, so the
    branches' counts add up and their pages merge without a request twice.
    """
    # Later branches repeat the earlier tests negated, and DuckDB may test those first, on every row: so the
    # tests of columns with few distinct values come first, and the ids (unique per row) last. Each test is
    # (matches, does not match), both about one column, so DuckDB can run either inside that column's scan.
    tests: list[tuple[str, str, list[Any]]] = []
    for c in NAMED_BY_ROLLUP:
        names = r.query(f"SELECT DISTINCT {c} AS v FROM request_rollup WHERE strpos(lower({c}), lower(?)) > 0",
                        [text])["v"].tolist()
        if names:
            marks = ", ".join("?" for _ in names)
            tests.append((f"{c} IN ({marks})", f"({c} IS NULL OR {c} NOT IN ({marks}))", names))
    tests += [(f"strpos(lower({c}), lower(?)) > 0", f"({c} IS NULL OR strpos(lower({c}), lower(?)) = 0)", [text])
              for c in SEARCHED if c not in NAMED_BY_ROLLUP]
    for prefix in dict.fromkeys((text, text.lower())):
        tests += [(f"starts_with({c}, ?)", f"({c} IS NULL OR NOT starts_with({c}, ?))", [prefix])
                  for c in SEARCHED_FROM_START]
    branches = []
    for i, (test, _, params) in enumerate(tests):
        earlier = tests[:i]
        condition = " AND ".join([test, *(negated for _, negated, _ in earlier)])
        branches.append((condition, [*params, *(p for _, _, ps in earlier for p in ps)]))
    return branches


def _where(filters: Filters, search: tuple[str, list[Any]] | None, statuses: tuple[str, ...],
           user: str = "", since: datetime | None = None) -> tuple[str, list[Any]]:
    extra: list[str] = []
    params: list[Any] = []
    if since is not None:
        extra.append("ts >= ?")
        params.append(since)
    if user.strip():
        extra.append("user_id = ?")
        params.append(user.strip())
    if search is not None:
        extra.append(search[0])
        params.extend(search[1])
    if statuses:
        extra.append(f"status IN ({', '.join('?' for _ in statuses)})")
        params.extend(statuses)
    where, fparams = filters.where(extra=tuple(extra))
    return where, params + fparams


_COLS = ", ".join([*(c if c != "cost_usd" else "cost_usd::DOUBLE PRECISION AS cost_usd" for c in LIST_COLUMNS),
                   *LIST_TEXT])
_NEWEST = "ORDER BY ts DESC, request_id"


def list_requests(log: CallLog | Reader, filters: Filters, *, search: str = "", statuses: tuple[str, ...] = (),
                  limit: int = 200, offset: int = 0, user: str = "",
                  search_since: datetime | None = None) -> tuple[pd.DataFrame, int]:
    """The newest matching requests (one page of them) and how many match in all; ``user``: one user's only.

    ``search_since``: a search covers only the requests from then on (``search_window`` chooses it); the
    count is then of the matches in that period. A list without a search ignores it.
    """
    limit, offset = int(limit), int(offset)

    def searched(r: Reader) -> tuple[pd.DataFrame, int]:
        wheres = [_where(filters, branch, statuses, user, search_since)
                  for branch in _search_branches(r, search.strip())]
        counts = r.query(" UNION ALL ".join(f"SELECT {i} AS branch, count(*) AS n FROM requests {where}"
                                            for i, (where, _) in enumerate(wheres)),
                         [p for _, params in wheres for p in params])
        hit = [int(b) for b, n in zip(counts.branch, counts.n) if n > 0]
        total = int(counts.n.sum())
        if not hit:
            return r.query(f"SELECT {_COLS} FROM requests WHERE false"), total
        # Only the branches with matches are paged (a top-N over a test nothing passes scanned for seconds at
        # 10M), and the page's ids first, its columns after: a branch matching millions sorts two columns,
        # not the prompt. The time range lets DuckDB skip the row groups outside it when fetching by id.
        pages = [f"(SELECT ts, request_id FROM requests {wheres[i][0]} {_NEWEST} LIMIT ?)" for i in hit]
        ids = r.query(f"SELECT * FROM ({' UNION ALL '.join(pages)}) AS hits {_NEWEST} LIMIT ? OFFSET ?",
                      [*(p for i in hit for p in (*wheres[i][1], limit + offset)), limit, offset])
        if ids.empty:
            return r.query(f"SELECT {_COLS} FROM requests WHERE false"), total
        page = r.query(f"""SELECT {_COLS} FROM requests WHERE ts BETWEEN ? AND ?
                           AND request_id IN ({", ".join("?" for _ in ids.request_id)}) {_NEWEST}""",
                       [ids.ts.min(), ids.ts.max(), *ids.request_id])
        return page, total

    def listed(r: Reader) -> tuple[pd.DataFrame, int]:
        where, params = _where(filters, None, statuses, user)
        page = r.query(f"SELECT {_COLS} FROM requests {where} {_NEWEST} LIMIT ? OFFSET ?", [*params, limit, offset])
        if user.strip():      # the rollups have no users
            count_sql, count_params = f"SELECT count(*) AS n FROM requests {where}", params
        else:
            count_sql, count_params = _rollup_count(filters, statuses)
        return page, int(r.query(count_sql, count_params)["n"].iloc[0])

    return rollup.read(log, searched if search.strip() else listed)


def requests_by_source(log: CallLog | Reader) -> dict[str, int]:
    """How many requests the log holds from each source (all dates)."""
    counts = rollup.read(log, lambda r: r.query(
        "SELECT source, sum(requests)::BIGINT AS n FROM request_rollup GROUP BY source ORDER BY source"))
    return {str(s): int(n) for s, n in zip(counts["source"], counts["n"])}


def _rollup_count(filters: Filters, statuses: tuple[str, ...]) -> tuple[str, list[Any]]:
    extra = (f"status IN ({', '.join('?' for _ in statuses)})",) if statuses else ()
    where, params = filters.where(time_column="hour", extra=extra)
    return f"SELECT coalesce(sum(requests), 0)::BIGINT AS n FROM request_rollup {where}", [*statuses, *params]


@dataclass(frozen=True, kw_only=True)
class RequestDetail:
    request: dict[str, Any]
    attempts: pd.DataFrame
    chain: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    related: pd.DataFrame          # the other requests with the same parent (idea <-> story)


def id_time(request_id: str) -> datetime | None:
    """The time a request id names (its first 48 bits, in ms: ``context.new_id``), if it is plausible.

    Ids from elsewhere (older logs, other tools) name no time, or a nonsense one: then None.
    """
    try:
        ms = int(request_id[:12], 16)
    except ValueError:
        return None
    if len(request_id) != 32 or not _ID_EARLIEST_MS <= ms <= time.time() * 1000 + 86_400_000:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC)


_ID_EARLIEST_MS = 1_577_836_800_000          # 2020-01-01: no Taelio id is older
# How far a request's logged time may be from the time in its id (the id is made as the request starts).
_ID_SLACK = timedelta(hours=1)
# How long after its request an attempt may start (retries, fallbacks and deadlines end far sooner).
_ATTEMPT_SLACK = timedelta(days=1)

_DETAIL_SQL = "SELECT * FROM requests WHERE request_id = ?"    # cost_usd (DECIMAL) comes back as a float


def request_detail(log: CallLog | Reader, request_id: str) -> RequestDetail | None:
    """One request, its attempts, trace and related requests, read on one connection.

    The tables have no index on ``request_id`` (migration 005), so every lookup also names a time range,
    which lets DuckDB skip the row groups outside it: the request's around the time its id names, its
    attempts from its own time on. An id that names no time falls back to a scan.
    """
    return rollup.read(log, lambda r: _detail(r, request_id))


def _detail(r: Reader, request_id: str) -> RequestDetail | None:
    req = pd.DataFrame()
    named = id_time(request_id)
    if named is not None:
        req = r.query(_DETAIL_SQL + " AND ts BETWEEN ? AND ?", [request_id, named - _ID_SLACK, named + _ID_SLACK])
    if req.empty:
        req = r.query(_DETAIL_SQL, [request_id])
    if req.empty:
        return None
    row = req.iloc[0].to_dict()
    ts = pd.Timestamp(row["ts"]).to_pydatetime()
    attempts = r.query("""
        SELECT n, ts, provider, model, status, error_type, error, http_status, latency_ms, ttft_ms,
               input_tokens, output_tokens, cached_tokens, cost_usd::DOUBLE PRECISION AS cost_usd, price_source,
               finish_reason, simulated, retry, hedge, wait_ms, sent
        FROM attempts WHERE request_id = ? AND ts BETWEEN ? AND ? ORDER BY n""",
                       [request_id, ts - _ID_SLACK, ts + _ATTEMPT_SLACK])
    try:
        trace = json.loads(row.get("trace") or "{}")
    except (TypeError, ValueError):
        trace = {}
    related = pd.DataFrame()
    if row.get("parent_id"):
        related = r.query("""
            SELECT ts, request_id, task, status, provider, model FROM requests
            WHERE parent_id = ? AND request_id <> ? AND ts BETWEEN ? AND ? ORDER BY ts""",
                          [row["parent_id"], request_id, ts - _ATTEMPT_SLACK, ts + _ATTEMPT_SLACK])
    return RequestDetail(request=row, attempts=attempts, chain=list(trace.get("chain") or []),
                         skipped=list(trace.get("skipped") or []), related=related)


EXPORT_COLUMNS = (*LIST_COLUMNS, "policy", "cached_tokens", "experiment_id", "error")


def export_requests(log: CallLog, filters: Filters, fmt: str) -> bytes:
    """The filtered requests (without prompt and output text) as ``csv`` or ``parquet`` bytes."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"export format must be csv or parquet, not {fmt!r}")
    where, params = filters.where()
    cols = ", ".join(c if c != "cost_usd" else "cost_usd::DOUBLE PRECISION AS cost_usd" for c in EXPORT_COLUMNS)
    df = rollup.read(log, lambda r: r.query(f"SELECT {cols} FROM requests {where} ORDER BY ts, request_id", params), rollups=False)
    if fmt == "csv":
        return df.to_csv(index=False).encode("utf-8")
    return df.to_parquet(index=False)
