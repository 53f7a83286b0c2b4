"""Blind pairwise voting: which pair to show next, and on which side.

A voter sees two answers to the same input as "A" and "B", with the
variants' names hidden and the sides drawn at random, so neither brand nor
position can sway the vote. The next pair is the one with the fewest votes
so far (first across variant pairs, then across inputs), so 50 quick votes
spread over the whole experiment instead of piling onto one input.
"""
from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from dataclasses import dataclass

from taelio_core.experiments.model import Experiment
from taelio_core.experiments.store import ExperimentStore

__all__ = ["Matchup", "mask_names", "next_matchup"]


@dataclass(frozen=True, kw_only=True)
class Matchup:
    input_id: int
    variables: dict[str, str]
    left: str          # variant id shown as A
    right: str         # variant id shown as B
    left_text: str
    right_text: str

    @property
    def prompt(self) -> str:
        return self.variables.get("prompt", "")


def next_matchup(store: ExperimentStore, experiment: Experiment, *, rng: random.Random | None = None,
                 voter: str | None = None, skip: set[tuple[int, str, str]] | None = None) -> Matchup | None:
    """The least-voted (input, pair) with both answers ok, sides randomised; None when nothing is votable.

    ``skip`` holds (input, variant, variant) triples to leave out, e.g. ones
    the voter passed over; a voter's own past votes are left out when
    ``voter`` is given and other pairs remain.
    """
    rng = rng or random.Random()
    cells = store.cells(experiment.experiment_id)
    votes = store.votes(experiment.experiment_id)
    per_item: Counter[tuple[int, str, str]] = Counter()
    per_pair: Counter[tuple[str, str]] = Counter()
    mine: set[tuple[int, str, str]] = set()
    for r in votes.itertuples():
        a, b = sorted((r.left_variant, r.right_variant))
        per_item[(int(r.input_id), a, b)] += 1
        per_pair[(a, b)] += 1
        if voter and r.voter == voter:
            mine.add((int(r.input_id), a, b))
    ids = [v.variant_id for v in experiment.variants]
    candidates = []
    for row in experiment.inputs:
        for a, b in itertools.combinations(sorted(ids), 2):
            ca, cb = cells.get((row.input_id, a)), cells.get((row.input_id, b))
            key = (row.input_id, a, b)
            if ca and cb and ca.ok and cb.ok and key not in (skip or set()):
                candidates.append(key)
    if not candidates:
        return None
    fresh = [c for c in candidates if c not in mine]
    pool = fresh or candidates
    best = min((per_pair[(a, b)], per_item[(i, a, b)]) for i, a, b in pool)
    choices = [c for c in pool if (per_pair[(c[1], c[2])], per_item[c]) == best]
    input_id, a, b = rng.choice(choices)
    left, right = (a, b) if rng.random() < 0.5 else (b, a)
    row = next(r for r in experiment.inputs if r.input_id == input_id)
    return Matchup(input_id=input_id, variables=row.variables, left=left, right=right,
                   left_text=mask_names(cells[(input_id, left)].output, experiment),
                   right_text=mask_names(cells[(input_id, right)].output, experiment))


def mask_names(text: str, experiment: Experiment) -> str:
    """Hide the variants' provider:model, model and label where an answer names them (the
    simulator signs its text; real models sometimes say who they are), so the vote stays blind."""
    names = {n for v in experiment.variants for n in (v.ref, v.model, v.label) if len(n) >= 3}
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(re.escape(name), "▒▒▒", text, flags=re.IGNORECASE)
    return text
