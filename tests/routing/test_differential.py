"""The differential test: on the fixed fault script the live async router and the Sandbox decide the same,
request by request (the chosen entry, every attempt with its status, retry, wait, latency and cost, every
skip with its reason, the status, the routing reason).

The live side is ``fault_script.run_live`` (the live ``Router`` on simulated providers in virtual time); the
Sandbox side is the discrete-event Sandbox over the decision core, ``run_sandbox`` in
``tests/sandbox/test_sandbox_decisions.py``. Both are also held to the golden file, so a difference shows
which side moved.
"""
from __future__ import annotations

import json

from tests.routing.fault_script import run_live
from tests.sandbox.test_sandbox_decisions import run_sandbox


def test_the_live_router_and_the_sandbox_make_identical_decisions_on_the_fault_script() -> None:
    live = json.loads(json.dumps(run_live()))
    sandbox = json.loads(json.dumps(run_sandbox()))
    assert len(live) == len(sandbox)
    differ = [(a, b) for a, b in zip(live, sandbox) if a != b]
    assert not differ, (f"{len(differ)} of {len(live)} requests decided differently; the first:\n"
                        f"  live:    {json.dumps(differ[0][0], sort_keys=True)}\n"
                        f"  sandbox: {json.dumps(differ[0][1], sort_keys=True)}")
