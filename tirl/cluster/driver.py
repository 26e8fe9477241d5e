"""The driver side of a Ray run (``cluster.scheduler=ray``): what ``RLTrainer`` hands its sampling
to. The loop keeps slime's shape, generate -> train -> push weights:

    step t:  collect the rollouts of step t (rewarded trees, each stamped with a policy version)
             drop trees older than max_staleness versions (never happens by construction; the
             check makes it a rule), record the lag of what is trained
             [max_staleness = k > 0: submit step t+k's rollouts now, before the update]
             credit, update (here, or data-parallel over trainer ranks)
             push the new weights (version t+1) to every worker

With ``max_staleness=0`` every round is submitted after the previous push, so it samples the
newest weights (lag 0) and, with the driver's sampling generator handed to the workers and taken
back from the first slice, each flat group gets the per-request seeds one process draws: the
trajectories and the weights are the inline run's. With k > 0 up to k steps' rollouts are
generated while the update runs (asynchronous RL); their generators are seeded per (step, round)
and the update weights their tokens by the truncated behaviour ratio (``tirl.algo.decoupled``).

A checkpoint taken while rollouts are in flight records the task stream's position before them,
so a resumed run samples those tasks again (with its own weights) instead of skipping them.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass

import torch

from tirl.config import Config
from tirl.rewards.base import RewardSpec
from tirl.train.remote import RemoteRollouts
from tirl.train.strategies import StepReport
from tirl.types import RolloutTree, Task

from .pool import Pending, RolloutPool
from .weight_sync import trained_parameters
from .worker import SampleResult


@dataclass
class Prefetch:
    step: int
    tasks: list[Task]
    pending: Pending
    stream_state: dict
    """The task stream before these tasks were taken (what a checkpoint records)."""


def round_generator_state(seed: int, step: int, round_: int) -> torch.Tensor:
    """The sampling generator of a pipelined round, seeded per (seed, step, round)."""
    return torch.Generator().manual_seed(hash((seed, step, round_, "rollout")) & (2**62 - 1)).get_state()


class RayRollouts(RemoteRollouts):
    def __init__(self, cfg: Config, model: torch.nn.Module, version: int, rewards: list[RewardSpec] | None = None):
        """Start the workers and push them ``model``'s weights as ``version``."""
        self.cfg = cfg
        self.pool = RolloutPool(cfg, rewards)
        self.prefetched: deque[Prefetch] = deque()
        self.reports: list[StepReport] = []
        self.stats = Counter()  # this step's worker-side counts (tokens, seconds)
        self.sync_stats: dict[str, float] = {}
        self.push(model, version)

    @property
    def pipelined(self) -> bool:
        return self.cfg.cluster.max_staleness > 0

    # -- weights ------------------------------------------------------------------------------
    def push(self, model: torch.nn.Module, version: int) -> None:
        """Publish the trained weights as ``version`` to every worker. Synchronous runs wait for
        the workers to load them (their next rollouts need them); pipelined runs do not (the
        workers are still sampling), and report a push's load times at the next push."""
        t0 = time.perf_counter()
        previous = self.pool.load_stats() if self.pipelined else {}
        self.pool.push(trained_parameters(model), version)
        stats = {"publish_s": self.pool.sync.last_publish_s}
        loads = previous if self.pipelined else self.pool.load_stats()
        if loads:
            stats |= {"load_s": loads["load_s"], "bytes": loads["bytes"]}
        if not self.pipelined:
            stats["wall_s"] = time.perf_counter() - t0
        self.sync_stats = stats

    # -- sampling -----------------------------------------------------------------------------
    def sample_round(self, tasks: list[Task], step: int, round_: int, generator: torch.Generator, expert_samples: int) -> list[RolloutTree]:
        """One round now: its trees, rewarded, in task order. On-policy runs hand the workers the
        run's generator and take it back from the first slice (as one process would advance it)."""
        state = round_generator_state(self.cfg.train.seed, step, round_) if self.pipelined else generator.get_state()
        results = self.pool.collect(self.pool.submit(tasks, step, round_, state, expert_samples))
        if not self.pipelined:
            generator.set_state(results[0].generator_state)
        return self._take(results)

    def prefetch(self, step: int, tasks: list[Task], stream_state: dict, expert_samples: int) -> None:
        """Submit step ``step``'s first round now; ``collect_prefetched`` takes it at that step."""
        state = round_generator_state(self.cfg.train.seed, step, 0)
        self.prefetched.append(Prefetch(step, tasks, self.pool.submit(tasks, step, 0, state, expert_samples), stream_state))

    def collect_prefetched(self, step: int) -> tuple[list[Task], list[RolloutTree]] | None:
        if not self.prefetched or self.prefetched[0].step != step:
            return None
        pre = self.prefetched.popleft()
        return pre.tasks, self._take(self.pool.collect(pre.pending))

    def in_flight(self) -> int:
        return len(self.prefetched)

    def checkpoint_stream_state(self) -> dict | None:
        """The task stream's position before the rollouts still in flight (None: none are)."""
        return self.prefetched[0].stream_state if self.prefetched else None

    def _take(self, results: list[SampleResult]) -> list[RolloutTree]:
        for r in results:
            self.reports.append(r.report)
            self.stats["tokens_generated"] += r.tokens_generated
            self.stats["worker_s"] = max(self.stats["worker_s"], r.seconds)
            if r.prefix_tokens_recomputed is not None:
                self.stats["prefix_tokens_recomputed"] += r.prefix_tokens_recomputed
        return [t for r in results for t in r.trees]

    # -- staleness ----------------------------------------------------------------------------
    def within_staleness(self, tasks: list[Task], trees: list[RolloutTree], version: int) -> tuple[list[Task], list[RolloutTree], dict]:
        """Drop trees sampled more than ``max_staleness`` versions before ``version`` (the
        weights being updated); the lag of what is kept, per trajectory, goes to the metrics."""
        k = self.cfg.cluster.max_staleness
        keep_tasks, keep, lags, dropped = [], [], [], 0
        for task, tree in zip(tasks, trees):
            trajs = tree.trajectories()
            lag = max((version - t.policy_version for t in trajs), default=0)
            if lag > k:
                dropped += 1
                continue
            keep_tasks.append(task)
            keep.append(tree)
            lags += [version - t.policy_version for t in trajs]
        m = {
            "staleness/lag_mean": sum(lags) / len(lags) if lags else 0.0,
            "staleness/lag_max": float(max(lags, default=0)),
            "staleness/dropped_trees": float(dropped),
        }
        return keep_tasks, keep, m

    # -- what the step reports ----------------------------------------------------------------
    def take_reports(self) -> StepReport:
        """The strategies' reports of this step's rollouts, merged: costs summed; metrics
        averaged over the slices that reported them (per-worker E3-TIR statistics)."""
        costs: Counter = Counter()
        sums: Counter = Counter()
        seen: Counter = Counter()
        for r in self.reports:
            costs.update(r.costs)
            for k, v in r.metrics.items():
                sums[k] += v
                seen[k] += 1
        self.reports = []
        return StepReport({k: sums[k] / seen[k] for k in sums}, dict(costs))

    def take_metrics(self) -> tuple[dict[str, float], int, int | None]:
        """This step's cluster metrics (workers, restarts and resubmitted tasks, in-flight steps,
        the slowest slice's rollout seconds, the weight sync's seconds and bytes), the tokens the
        workers sampled and the prefix tokens they recomputed."""
        counts = self.pool.take_counts()
        m = {
            "cluster/workers": float(len(self.pool.workers) - len(self.pool.dead)),
            "cluster/worker_restarts": float(counts.get("worker_restarts", 0)),
            "cluster/resubmitted_tasks": float(counts.get("resubmitted_tasks", 0)),
            "cluster/in_flight_steps": float(self.in_flight()),
            "cluster/worker_rollout_s": float(self.stats.get("worker_s", 0.0)),
        }
        m |= {f"cluster/weight_{k}": float(v) for k, v in self.sync_stats.items()}
        prefix = int(self.stats["prefix_tokens_recomputed"]) if "prefix_tokens_recomputed" in self.stats else None
        tokens = int(self.stats.get("tokens_generated", 0))
        self.stats = Counter()
        return m, tokens, prefix

    def close(self) -> None:
        self.pool.close()
