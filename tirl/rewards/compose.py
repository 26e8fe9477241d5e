"""Apply reward specs to groups of trajectories: components, weights, total.

A ``RewardSpec`` (``tirl.rewards.base``) names a group-aware function and its weight. For every
task group, ``apply_rewards`` calls each function once, stores each component in
``traj.rewards[spec.name]`` and the weighted sum in ``traj.reward`` (both are replaced, not
merged, so applying twice never leaves stale components). Metrics are specs with weight 0:
stored, not optimised.

Infrastructure failures are never scored. A trajectory with ``stop_reason == StopReason.ERROR``
(the sandbox died after retries, DESIGN.md invariant 5) is left out of its group before any
reward function sees it: its ``reward`` is set to 0.0 and its ``rewards`` to ``{}`` -- an empty
dict marks "not scored", distinct from a scored 0 -- and group statistics (efficiency rewards,
advantages downstream) are computed over the remaining trajectories only. The trainer is
expected to drop these trajectories and count them, not to train on the 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from tirl.rewards.base import RewardSpec
from tirl.types import StopReason, Task, Trajectory


class RewardError(ValueError):
    """A reward function broke its contract (wrong number of values, non-finite value)."""


def scorable(group: Sequence[Trajectory]) -> list[Trajectory]:
    """The trajectories a reward may score: all but infrastructure failures."""
    return [t for t in group if t.stop_reason is not StopReason.ERROR]


def apply_rewards(groups: list[tuple[Task, list[Trajectory]]], specs: list[RewardSpec]) -> None:
    """Fill ``traj.rewards`` (per component) and ``traj.reward`` (weighted sum) in place."""
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RewardError(f"reward spec names must be unique; repeated: {', '.join(duplicates)}")

    for task, group in groups:
        for traj in group:
            if traj.stop_reason is StopReason.ERROR:
                traj.reward = 0.0
                traj.rewards = {}
        live = scorable(group)
        if not live:
            continue
        totals = [0.0] * len(live)
        components: dict[str, list[float]] = {}
        for spec in specs:
            values = list(spec.fn(live, task))
            if len(values) != len(live):
                raise RewardError(f"reward {spec.name!r} returned {len(values)} values for {len(live)} trajectories of task {task.id!r}")
            for i, v in enumerate(values):
                if not isinstance(v, numbers.Real) or not math.isfinite(v):
                    raise RewardError(f"reward {spec.name!r} returned {v!r} for trajectory {i} of task {task.id!r}; expected a finite float")
                totals[i] += spec.weight * float(v)
            components[spec.name] = [float(v) for v in values]
        for i, traj in enumerate(live):
            traj.rewards = {name: vals[i] for name, vals in components.items()}
            traj.reward = totals[i]
