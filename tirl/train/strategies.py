"""Rollout strategies as the trainer sees them: ``sample`` rolls out one tree per task, and
``credit`` turns the rewarded trees into TrainRows (advantages and clip bounds per token).

- ``flat``: GRPO-family groups (``rollout.group_size`` per task); each trajectory's group
  advantage (``algo.advantage``) is broadcast over its tokens, exactly as the flat trainer
  always did (``tirl.train.rows.build_rows``).
- ``arpo``: entropy-adaptive branching (``tirl.rollout.arpo``); GRPO over all M leaves of the
  tree; soft attribution gives every row its leaf's advantage, hard attribution gives every
  token of a step the mean advantage of the leaves below it (``tirl.algo.tree_advantages``).
- ``elpo``: BEL trees (``tirl.rollout.elpo``), hierarchical advantages per step and
  error-localised lower clip bounds on the critical suffixes.
- ``e3``: E3-TIR's expert-anchored warm-up, then ``flat`` or ``arpo`` (``tirl.train.e3``).

The recipe picks one by name (``strategy.name``); nothing else in the trainer depends on it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import torch

from tirl.algo import ADVANTAGES, AdvantageConfig
from tirl.algo.tree_advantages import elc_clip_low, hierarchical_advantages, leaf_mean_advantages
from tirl.config import Config
from tirl.engine.base import Engine
from tirl.protocol.base import Protocol as ToolProtocol
from tirl.rollout.agent_loop import RolloutConfig, rollout
from tirl.rollout.arpo import arpo_rollout
from tirl.rollout.elpo import bel_rollout
from tirl.rollout.tree import Branch, RolloutTree
from tirl.train.rows import build_rows
from tirl.types import Task, TrainRow


@dataclass
class Credit:
    """Training rows of a batch of trees and the advantage values they were built from (per
    trajectory for flat and soft credit, per node otherwise), for logging."""

    rows: list[TrainRow]
    values: list[float] = field(default_factory=list)


class Strategy(Protocol):
    name: str

    async def sample(self, engine: Engine, protocol: ToolProtocol, tasks: Sequence[Task], rcfg: RolloutConfig, rng: random.Random) -> list[RolloutTree]: ...

    def credit(self, trees: Sequence[RolloutTree]) -> Credit: ...


def _leaf_advantages(trees: Sequence[RolloutTree], cfg: Config) -> list[dict[str, float]]:
    """``algo.advantage`` (GRPO by default) over each tree's leaves as one group."""
    out = []
    for tree in trees:
        leaves = tree.leaves()
        reward_B = torch.tensor([leaf.reward for leaf in leaves])
        adv_B = ADVANTAGES[cfg.algo.advantage](reward_B, torch.zeros(len(leaves), dtype=torch.long), AdvantageConfig(cfg.algo.adv_eps, cfg.algo.std_normalize))
        out.append({leaf.id: float(a) for leaf, a in zip(leaves, adv_B)})
    return out


def _annotate(tree: RolloutTree, values: dict[str, float], key: str = "advantage") -> None:
    """Record the values on the nodes so the saved tree shows what each step was trained with."""
    for n in tree.nodes():
        if n.id in values:
            n.info[key] = round(values[n.id], 6)


class FlatStrategy:
    name = "flat"

    def __init__(self, cfg: Config):
        self.cfg = cfg

    async def sample(self, engine, protocol, tasks, rcfg, rng) -> list[RolloutTree]:
        groups = await rollout(engine, protocol, tasks, rcfg)
        return [RolloutTree.from_lineage(t.id, [Branch(tr) for tr in g], {"strategy": "flat"}) for t, g in zip(tasks, groups)]

    def credit(self, trees: Sequence[RolloutTree]) -> Credit:
        a = self.cfg.algo
        trajs = [tr for tree in trees for tr in tree.trajectories()]
        if not trajs:
            return Credit([])
        reward_B = torch.tensor([t.reward for t in trajs])
        group_B = torch.tensor([gi for gi, tree in enumerate(trees) for _ in tree.leaves()])
        adv_B = ADVANTAGES[a.advantage](reward_B, group_B, AdvantageConfig(a.adv_eps, a.std_normalize))
        i = 0
        for tree in trees:
            leaves = tree.leaves()
            _annotate(tree, {leaf.id: float(adv_B[i + j]) for j, leaf in enumerate(leaves)})
            i += len(leaves)
        return Credit(build_rows(trajs, adv_B, a.clip_low, a.clip_high, a.mask_truncated), adv_B.tolist())


class ARPOStrategy:
    name = "arpo"

    def __init__(self, cfg: Config):
        self.cfg = cfg

    async def sample(self, engine, protocol, tasks, rcfg, rng) -> list[RolloutTree]:
        return await arpo_rollout(engine, protocol, tasks, rcfg, self.cfg.strategy.arpo, rng)

    def credit(self, trees: Sequence[RolloutTree]) -> Credit:
        a, s = self.cfg.algo, self.cfg.strategy
        rows, values = [], []
        for tree, leaf_adv in zip(trees, _leaf_advantages(trees, self.cfg)):
            if s.arpo.attribution == "soft":
                adv, per_leaf = leaf_adv, True
            else:
                adv, per_leaf = leaf_mean_advantages(tree, leaf_adv), False
            _annotate(tree, adv)
            values += list(adv.values())
            rows += tree.flatten(adv, per_leaf=per_leaf, clip_low=a.clip_low, clip_high=a.clip_high, dedupe_prefix=s.dedupe_prefix, mask_truncated=a.mask_truncated)
        return Credit(rows, values)


class ELPOStrategy:
    name = "elpo"

    def __init__(self, cfg: Config):
        self.cfg = cfg

    async def sample(self, engine, protocol, tasks, rcfg, rng) -> list[RolloutTree]:
        return await bel_rollout(engine, protocol, tasks, rcfg, self.cfg.strategy.elpo)

    def credit(self, trees: Sequence[RolloutTree]) -> Credit:
        a, s = self.cfg.algo, self.cfg.strategy
        e = s.elpo
        rows, values = [], []
        for tree in trees:
            adv = hierarchical_advantages(tree, e.lam, a.adv_eps)
            low = elc_clip_low(tree, tree.meta.get("critical", []), a.clip_low, e.eps_elc, e.elc_scope)
            _annotate(tree, adv)
            _annotate(tree, low, "clip_low")
            values += list(adv.values())
            rows += tree.flatten(adv, clip_low=a.clip_low, clip_high=a.clip_high, clip_low_nodes=low, dedupe_prefix=s.dedupe_prefix, mask_truncated=a.mask_truncated)
        return Credit(rows, values)


STRATEGIES = {"flat": FlatStrategy, "arpo": ARPOStrategy, "elpo": ELPOStrategy}


def make_strategy(cfg: Config) -> Strategy:
    if cfg.strategy.name == "e3":  # tirl.train.e3 builds on this module (Credit, the strategy it hands over to)
        from tirl.train.e3 import E3Strategy

        return E3Strategy(cfg)
    return STRATEGIES[cfg.strategy.name](cfg)
