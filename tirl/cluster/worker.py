"""A rollout worker: one Ray actor owning an engine, a sandbox pool, the tools, the reward
functions and the rollout strategy, over its own copy of the policy's model.

It does two things, in the order the driver calls them (a Ray actor runs its calls one at a
time, in submission order):

- ``load_weights(handle)``: copy one version of the trained weights into its model
  (``tirl.cluster.weight_sync``); the engine then samples from them;
- ``sample(request)``: roll out its slice of a step's tasks with the configured strategy (one
  tree per task: a task's whole tree is sampled here), reward each tree's leaves as the task's
  group, stamp every trajectory with the weights' version, and return the trees with what the
  strategy reports (E3-TIR's expert costs) and the sampling generator's state.

Sampling is the inline trainer's, call for call: the same ``StepContext`` (branching decisions
seeded by (seed, step, round)), the engine's generator set to the driver's before the call, and
``seed_index`` placing the slice's trajectories in the whole batch, so flat groups get the
per-request seeds one process would have drawn.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tirl.config import Config
from tirl.rewards.base import RewardSpec
from tirl.rewards.compose import apply_rewards
from tirl.rewards.schedule import Progress
from tirl.train import components as C
from tirl.train.policy import build_model
from tirl.train.rng import seed_everything
from tirl.train.scoring import TeacherForcingScorer
from tirl.train.strategies import StepContext, StepReport, make_strategy
from tirl.types import RolloutTree, Task

from .weight_sync import WeightHandle, load_into


@dataclass
class SampleRequest:
    tasks: list[Task]
    step: int
    round: int
    seed_index: int
    """Trajectories of the step's batch before this slice's (flat groups: first task's index x
    group size)."""
    generator_state: torch.Tensor
    """The run's sampling generator at the start of this round (the driver's)."""
    expert_samples: int = 0


@dataclass
class SampleResult:
    trees: list[RolloutTree]
    generator_state: torch.Tensor
    policy_version: int
    report: StepReport = field(default_factory=StepReport)
    tokens_generated: int = 0
    prefix_tokens_recomputed: int | None = None
    seconds: float = 0.0
    worker: int = 0
    pid: int = 0


def worker_dir(run_dir: Path, index: int) -> Path:
    """A worker's own directory in the run: E3-TIR keeps its expert set there (one file per
    worker, never two writers on one file; a task met by two workers is paid for by each)."""
    return run_dir / "workers" / str(index)


class RolloutWorker:
    """The state of one rollout actor (``tirl.cluster.pool`` makes it a Ray actor)."""

    def __init__(self, cfg: Config, index: int, rewards: list[RewardSpec] | None = None):
        """``rewards``: reward functions to use instead of the config's (a program that set
        ``RLTrainer.rewards``; they must pickle)."""
        self.cfg, self.index = cfg, index
        seed_everything(cfg.train.seed)
        model, tokenizer = build_model(cfg)
        self.model = model.eval().requires_grad_(False)
        self.rt = C.build_runtime(cfg, self.model, tokenizer, seed=cfg.train.seed)
        self.progress = Progress(step=0, total=cfg.train.steps)
        self.rewards = rewards if rewards is not None else C.rewards(cfg, self.rt.protocol, self.progress)
        self.strategy = make_strategy(cfg)
        self.scorer = TeacherForcingScorer(self.model, tokenizer.pad_token_id, cfg.optim.micro_batch_size, cfg.optim.bf16)
        self.runner = asyncio.Runner()
        self.version = -1  # no weights received yet
        self.run_dir = worker_dir(cfg.run_dir, index)

    def pid(self) -> int:
        return os.getpid()

    def load_weights(self, handle: WeightHandle) -> dict[str, float]:
        """Install one version of the trained weights; returns the seconds it took and the bytes."""
        t0 = time.perf_counter()
        n = load_into(self.model, handle.fetch())
        self.rt.engine.sync_weights()
        self.version = handle.version
        return {"seconds": time.perf_counter() - t0, "bytes": float(n), "version": float(handle.version)}

    def sample(self, req: SampleRequest) -> SampleResult:
        if self.version < 0:
            raise RuntimeError(f"rollout worker {self.index} was asked to sample before it received weights")
        t0 = time.perf_counter()
        cfg, engine = self.cfg, self.rt.engine
        engine.generator.set_state(req.generator_state)
        gen0, prefix0 = engine.tokens_generated, engine.counters().prefix_tokens_recomputed
        self.progress.step = req.step  # scheduled rewards read the step being scored
        ctx = StepContext(
            engine=engine,
            protocol=self.rt.protocol,
            rollout=C.rollout_config(cfg),
            rng=random.Random(f"{cfg.train.seed}/{req.step}/{req.round}"),  # as the inline trainer seeds it
            step=req.step,
            total_steps=cfg.train.steps,
            scorer=self.scorer,
            expert_samples=req.expert_samples,
            run_dir=self.run_dir,
            seed_index=req.seed_index,
        )
        trees = self.runner.run(self.strategy.sample(req.tasks, ctx))
        apply_rewards([(task, tree.trajectories()) for task, tree in zip(req.tasks, trees)], self.rewards)
        for tree in trees:
            tree.meta["worker"] = self.index  # a reader of the saved tree sees where it was sampled
            for tr in tree.trajectories():
                tr.policy_version = self.version
        prefix1 = engine.counters().prefix_tokens_recomputed
        return SampleResult(
            trees=trees,
            generator_state=engine.generator.get_state(),
            policy_version=self.version,
            report=self.strategy.after_step(),
            tokens_generated=engine.tokens_generated - gen0,
            prefix_tokens_recomputed=None if prefix0 is None else prefix1 - prefix0,
            seconds=time.perf_counter() - t0,
            worker=self.index,
            pid=os.getpid(),
        )

    def close(self) -> None:
        try:
            self.runner.run(self.strategy.aclose())
            self.runner.run(self.rt.aclose())
        finally:
            self.runner.close()
            self.rt.engine.close()
