"""What the trainer and a rollout strategy say to each other (DESIGN.md, "How a training step
flows"): once per step the trainer calls ``sample`` (one tree per task), rewards the trees'
leaves, calls ``credit`` (advantages and clip bounds laid over the ids as TrainRows), updates the
policy and calls ``after_step`` (the strategy's metrics and costs); ``aclose`` ends the run.
Every strategy has all four hooks; the trainer never asks which ones a strategy has.

A strategy knows the run only through the ``StepContext`` it is handed: the rollout pieces, the
step, the policy's teacher-forcing scorer and the run's expert spending. Nothing else of the
trainer reaches it.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from tirl.config import Config
from tirl.engine.base import Engine
from tirl.protocol.base import Protocol
from tirl.rollout.agent_loop import RolloutConfig
from tirl.rollout.e3 import EntropyScorer
from tirl.types import RolloutTree, Task, TrainRow


@dataclass
class StepContext:
    """What a strategy may know about the run when it samples a step."""

    engine: Engine
    protocol: Protocol
    rollout: RolloutConfig
    rng: random.Random
    """Branching decisions; seeded by (seed, step, round), so a resumed run draws the same."""
    step: int = 0
    """The RL step being sampled (0-based): E3-TIR's warm-up phase and expert share."""
    total_steps: int = 0
    scorer: EntropyScorer | None = None
    """The policy's per-token entropies by teacher forcing (E3-TIR scores anchors with it)."""
    expert_samples: int = 0
    """Expert trajectories the run obtained before this step (SFT warm-up included), for
    ``strategy.e3.max_expert_samples``."""
    run_dir: Path | None = None
    """Where a strategy keeps what a resumed run reads back (E3-TIR's expert set)."""
    seed_index: int = 0
    """Trajectories of the step's batch before these tasks' (a Ray rollout worker samples a slice
    of the batch): flat groups seed each trajectory as in the whole batch, so the slices together
    sample what one process would. Tree strategies sample reproducibly per slice instead."""


@dataclass
class Credit:
    """Training rows of a batch of trees and the advantage values they were built from (per
    trajectory for flat groups and per-leaf credit, per node otherwise), for the adv/* metrics."""

    rows: list[TrainRow]
    values: list[float] = field(default_factory=list)


@dataclass
class StepReport:
    """What a strategy reports after the update: its metrics (logged as they are) and the costs
    it spent this step (added to the run's totals, logged as ``total/<name>``)."""

    metrics: dict[str, float] = field(default_factory=dict)
    costs: dict[str, int] = field(default_factory=dict)


class Strategy(ABC):
    name: ClassVar[str]

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @abstractmethod
    async def sample(self, tasks: Sequence[Task], ctx: StepContext) -> list[RolloutTree]:
        """One tree per task, in task order."""

    @abstractmethod
    def credit(self, trees: Sequence[RolloutTree]) -> Credit:
        """Rows for the rewarded trees; records each node's advantage (and clip bound) on it."""

    def after_step(self) -> StepReport:
        return StepReport()

    async def aclose(self) -> None:
        return None


def record_credit(tree: RolloutTree, advantage: Mapping[str, float], clip_low: Mapping[str, float] | None = None) -> None:
    """Record the values on the nodes so the saved tree shows what each step was trained with."""
    for n in tree.nodes():
        if n.id in advantage:
            n.advantage = round(advantage[n.id], 6)
        if clip_low is not None and n.id in clip_low:
            n.clip_low = round(clip_low[n.id], 6)
