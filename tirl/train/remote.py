"""What ``RLTrainer`` asks of rollouts sampled in other processes (``cluster.scheduler=ray``).

The trainer samples inline by default. A scheduler that samples elsewhere (``tirl.cluster``'s Ray
rollout workers) implements this interface and is handed to the trainer as a factory, so the
trainer never imports it (``tirl.cluster`` sits above ``tirl.train``; docs/DESIGN.md, "Layers").
Every method is called by the trainer's step in this order: ``collect_prefetched`` or
``sample_round`` (each round of ``sample_batch``), ``within_staleness``, ``prefetch`` (pipelined
runs), the update, ``push``, then ``take_reports`` and ``take_metrics``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

from tirl.config import Config
from tirl.rewards.base import RewardSpec
from tirl.train.strategies import StepReport
from tirl.types import RolloutTree, Task


class RemoteRollouts(ABC):
    pipelined: bool
    """True when rollouts of later steps are generated while this step updates (max_staleness > 0)."""

    @abstractmethod
    def push(self, model: torch.nn.Module, version: int) -> None:
        """Hand the workers ``model``'s trained weights as ``version`` (optimiser steps taken)."""

    @abstractmethod
    def sample_round(self, tasks: list[Task], step: int, round_: int, generator: torch.Generator, expert_samples: int) -> list[RolloutTree]:
        """One round's trees, rewarded, in task order, sampled now."""

    @abstractmethod
    def prefetch(self, step: int, tasks: list[Task], stream_state: dict, expert_samples: int) -> None:
        """Start step ``step``'s first round now (``stream_state``: the stream before ``tasks``)."""

    @abstractmethod
    def collect_prefetched(self, step: int) -> tuple[list[Task], list[RolloutTree]] | None:
        """The tasks and trees prefetched for ``step`` (None: none were)."""

    @abstractmethod
    def in_flight(self) -> int:
        """Prefetched steps not yet collected."""

    @abstractmethod
    def checkpoint_stream_state(self) -> dict | None:
        """The task stream's position before the rollouts in flight (None: none are)."""

    @abstractmethod
    def within_staleness(self, tasks: list[Task], trees: list[RolloutTree], version: int) -> tuple[list[Task], list[RolloutTree], dict]:
        """The trees no older than max_staleness versions, and the staleness metrics."""

    @abstractmethod
    def take_reports(self) -> StepReport:
        """The strategies' reports from this step's rollouts (E3-TIR's costs), merged."""

    @abstractmethod
    def take_metrics(self) -> tuple[dict[str, float], int, int | None]:
        """This step's metrics, the tokens sampled and the prefix tokens recomputed (None: not counted)."""

    @abstractmethod
    def close(self) -> None: ...


RolloutsFactory = Callable[[Config, torch.nn.Module, int, "list[RewardSpec] | None"], RemoteRollouts]
"""(config, model, version, reward override) -> the started rollouts, its weights pushed."""
