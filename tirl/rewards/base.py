"""Reward functions: one signature for all of them.

A reward function is *group-aware*: it sees every trajectory sampled for one task at once
(so efficiency rewards can use group statistics) and returns one float per trajectory:

    fn(group: list[Trajectory], task: Task) -> list[float]

A ``RewardSpec`` names a function and its weight; the total reward is the weighted sum.
Metrics are rewards with weight 0: computed, stored per trajectory, not optimised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tirl.types import Task, Trajectory

RewardFn = Callable[[list[Trajectory], Task], list[float]]


@dataclass(frozen=True)
class RewardSpec:
    name: str
    fn: RewardFn
    weight: float = 1.0
