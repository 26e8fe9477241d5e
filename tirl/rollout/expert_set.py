"""A run's expert set (E3-TIR, ALGORITHMS.md §5): each task's accepted expert trajectory, obtained
once per task from an expert source (``tirl.rollout.experts``) within a limit, and what obtaining
them cost.

The set is written to a file as it grows (the rollout schema, ``tirl.rollout.io``; reusable as a
file expert or an SFT source) and read back by a resumed run, so a resumed run does not pay for
its experts twice. A task whose source has nothing, or whose expert trajectory the verifier
rejects (``correct_only``), is remembered as having none.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tirl.engine.base import Engine
from tirl.protocol.base import Protocol
from tirl.rollout.agent_loop import RolloutConfig
from tirl.rollout.experts import ExpertSource, correct, expert_tokens, make_expert_source
from tirl.rollout.io import read_jsonl, trajectory_to_json
from tirl.types import Task, Trajectory

COST_KEYS = ("expert_samples", "expert_tokens", "expert_rejected")
"""The costs that count toward a run's totals (``expert_missing`` is reported, not a cost)."""


class ExpertSet:
    def __init__(self, spec: str, *, temperature: float, correct_only: bool, limit: int, endpoints, seed: int, path: Path | None):
        """``spec``: the expert source (``strategy.e3.expert``); ``limit``: expert trajectories
        the run may obtain (0: no limit); ``path``: the file the set is kept in (None: not kept)."""
        self.spec, self.temperature, self.correct_only, self.limit = spec, temperature, correct_only, limit
        self.endpoints, self.seed, self.path = endpoints, seed, path
        self.source: ExpertSource | None = None
        self.cache: dict[str, Trajectory | None] = {}  # task id -> accepted expert trajectory (None: none)
        self.costs: Counter = Counter()  # spent since the last take_costs
        self._opened = False

    def open(self, resumed: bool) -> None:
        """Once per run, before the first lookup: a resumed run reads the set it paid for; a fresh
        run drops a file left by an earlier run in the same directory."""
        if self._opened:
            return
        self._opened = True
        if self.path is None or not self.path.exists():
            return
        if resumed:
            for tr in read_jsonl(self.path):
                self.cache[tr.task_id] = tr
        else:
            self.path.unlink()

    async def get(self, tasks: Sequence[Task], engine: Engine, protocol: Protocol, rcfg: RolloutConfig, spent: int) -> dict[str, Trajectory | None]:
        """Each task's accepted expert trajectory; tasks not met before are asked of the source
        while ``spent`` (expert samples the run obtained before this step) plus what this step
        obtained stays within the limit."""
        need, seen = [], set()
        for t in tasks:
            if t.id not in self.cache and t.id not in seen:
                need.append(t)
                seen.add(t.id)
        if self.limit:
            need = need[: max(0, self.limit - spent - self.costs["expert_samples"])]
        if need:
            if self.source is None:
                self.source = make_expert_source(
                    self.spec,
                    rollout=rcfg.model_copy(update={"temperature": self.temperature}),
                    policy_engine=engine,
                    endpoints=self.endpoints,
                    seed=self.seed,
                    correct_only=self.correct_only,
                )
            got = await self.source.solve(need, protocol, engine.tokenizer)
            accepted = []
            for task, tr in zip(need, got):
                if tr is None:  # the source has nothing for this task: nothing spent
                    self.costs["expert_missing"] += 1
                    self.cache[task.id] = None
                    continue
                self.costs["expert_samples"] += 1
                self.costs["expert_tokens"] += expert_tokens(tr)
                if self.correct_only and not correct(task, tr):
                    self.costs["expert_rejected"] += 1
                    self.cache[task.id] = None
                    continue
                self.cache[task.id] = tr
                accepted.append(tr)
            self._persist(accepted)
        return {t.id: self.cache.get(t.id) for t in tasks}

    def take_costs(self) -> Counter:
        """What was spent since the last call (``expert_samples``, ``expert_tokens``,
        ``expert_rejected``, ``expert_missing``)."""
        out, self.costs = self.costs, Counter()
        return out

    def _persist(self, trajs: list[Trajectory]) -> None:
        if self.path is None or not trajs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            for tr in trajs:
                f.write(json.dumps(trajectory_to_json(tr)) + "\n")

    async def aclose(self) -> None:
        if self.source is not None:
            await self.source.aclose()
