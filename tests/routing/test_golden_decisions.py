"""The live router's decisions on the fixed fault script are the golden file's, request by request.

A difference from ``golden_decisions.jsonl`` is a change in what the router
decides. It must be explained in the commit that rewrites the file
(``python -m tests.routing.fault_script``), never edited away.
"""
from __future__ import annotations

import json

from tests.routing.fault_script import read_golden, run_live


def _first_differences(got: list[dict], want: list[dict], n: int = 3) -> str:
    lines = []
    for g, w in zip(got, want):
        if g != w:
            lines.append(f"request {w['i']}:\n  golden: {json.dumps(w, sort_keys=True)}\n"
                         f"  now:    {json.dumps(g, sort_keys=True)}")
            if len(lines) == n:
                break
    return "\n".join(lines)


def test_the_live_router_decides_on_the_fault_script_exactly_as_the_golden_file_says() -> None:
    golden = read_golden()
    got = json.loads(json.dumps(run_live()))   # the file's JSON types (lists, not tuples)
    assert len(got) == len(golden)
    assert got == golden, "decisions differ from the golden file:\n" + _first_differences(got, golden)


def test_the_fault_script_exercises_every_kind_of_decision() -> None:
    golden = read_golden()
    statuses = {r["status"] for r in golden}
    assert statuses == {"ok", "failed", "rejected", "truncated"}
    errors = {a[2] for r in golden for a in r["attempts"] if a[2]}
    assert {"unavailable", "timeout", "rate_limited", "bad_response", "auth_failed", "model_not_found",
            "truncated"} <= errors
    skips = [s[1] for r in golden for s in r["skipped"]]
    for words in ("3 failures in a row", "of the last", "trial request failed", "a trial request is in flight",
                  "(key rejected)", "(model retired?)", "budget: the free tier daily budget",
                  "budget: the anthropic provider monthly budget"):
        assert any(words in s for s in skips), words
    waits = [a[4] for r in golden for a in r["attempts"] if a[3]]
    assert 400.0 in waits                                  # a Retry-After that fits, waited exactly
    assert any(0 < w < 400.0 and w != round(w) for w in waits)   # back-off with jitter
    assert any(r["routing_reason"] and "served with the free chain" in r["routing_reason"] for r in golden)
    assert any(a[6] is not None for r in golden for a in r["attempts"])   # priced attempts
    # The free tier's daily budget runs out before midnight and comes back after it.
    free = [r for r in golden if r["tier"] == "free"]
    rejected = [r["i"] for r in free if r["status"] == "rejected"]
    assert rejected and any(r["status"] == "ok" and r["i"] > rejected[0] + 30 for r in free)
