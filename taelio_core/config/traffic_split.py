"""A policy's ``[splits]``: live traffic for one tier x task shared between chains by weight."""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taelio_core.config.policy import ChainEntry

__all__ = ["SplitArm", "TrafficSplit"]


@dataclass(frozen=True, kw_only=True)
class SplitArm:
    name: str
    weight: float
    chain: tuple[ChainEntry, ...]


@dataclass(frozen=True, kw_only=True)
class TrafficSplit:
    """Live traffic for one tier x task shared between arms by weight.

    With a user id the choice is a hash of (tier, task, user), so a user stays
    on one arm for the life of the split; without one it is random.
    """

    tier: str
    task: str
    arms: tuple[SplitArm, ...]

    def choose(self, user_id: str | None = None, *, rng: random.Random | None = None) -> SplitArm:
        if user_id:
            digest = hashlib.sha256(f"{self.tier}.{self.task}:{user_id}".encode()).digest()
            u = int.from_bytes(digest[:8], "big") / 2**64
        else:
            u = (rng or random).random()
        total = sum(arm.weight for arm in self.arms)
        acc = 0.0
        for arm in self.arms:
            acc += arm.weight / total
            if u < acc:
                return arm
        return self.arms[-1]

    def reason(self, arm: SplitArm) -> str:
        """What the router records in ``routing_reason`` (the Compare page parses it back)."""
        return f"split {self.tier}.{self.task}={arm.name}"

