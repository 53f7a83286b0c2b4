"""Where a logged request came from, defined once.

Every request row names its source. Which sources are real, billed calls (and so count toward budgets)
and which a sandbox replay takes by default are decided here and nowhere else, so the Costs page, the
budget guard, ``taelio stats`` and the Sandbox cannot disagree about them.
"""
from __future__ import annotations

__all__ = ["BILLED_SOURCES", "REPLAY_SOURCES", "SOURCES"]

# Every source, in the order the dashboard's filter lists them.
SOURCES = ("live", "demo", "api", "sandbox", "experiment", "test")
# Calls a provider bills: they count toward budgets. Demo traffic never does (it is simulated).
BILLED_SOURCES = ("live", "api", "experiment", "test")
# The users' traffic a sandbox replay takes by default: what the dashboard and the API served, and demo data.
REPLAY_SOURCES = ("live", "api", "demo")
