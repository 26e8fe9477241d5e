"""Flat groups as trees (the GRPO family, ALGORITHMS.md §1-2): ``rollout.group_size`` independent
samples per task from the prompt, each task's group one tree whose only branching node is the
root, so every strategy hands the trainer the same type."""

from __future__ import annotations

from collections.abc import Sequence

from tirl.engine.base import Engine
from tirl.protocol.base import Protocol
from tirl.rollout.agent_loop import RolloutConfig, rollout
from tirl.rollout.tree import Branch, build_tree
from tirl.types import RolloutTree, Task


async def flat_rollout(engine: Engine, protocol: Protocol, tasks: Sequence[Task], rcfg: RolloutConfig, seed_index: int = 0) -> list[RolloutTree]:
    """``seed_index``: this batch's first trajectory's position in the whole step's batch (see
    ``tirl.rollout.agent_loop.run_states``)."""
    groups = await rollout(engine, protocol, tasks, rcfg, seed_index=seed_index)
    return [build_tree(t.id, [Branch(tr) for tr in g], strategy="flat") for t, g in zip(tasks, groups)]
