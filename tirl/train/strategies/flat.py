"""``flat``: GRPO-family groups (ALGORITHMS.md §1-2). ``rollout.group_size`` samples per task
(``tirl.rollout.flat``); each trajectory's group advantage (``algo.advantage``, one call over the
whole batch with each tree's leaves as a group) is broadcast over its trained tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tirl.algo import ADVANTAGES, AdvantageConfig
from tirl.rollout.flat import flat_rollout
from tirl.train.rows import flatten
from tirl.train.strategies.base import Credit, StepContext, Strategy, record_credit
from tirl.types import RolloutTree, Task


class FlatStrategy(Strategy):
    name = "flat"

    async def sample(self, tasks: Sequence[Task], ctx: StepContext) -> list[RolloutTree]:
        return await flat_rollout(ctx.engine, ctx.protocol, tasks, ctx.rollout, ctx.seed_index)

    def credit(self, trees: Sequence[RolloutTree]) -> Credit:
        a = self.cfg.algo
        leaves = [tree.leaves() for tree in trees]
        if not any(leaves):
            return Credit([])
        reward_B = torch.tensor([leaf.reward for group in leaves for leaf in group])
        group_B = torch.tensor([g for g, group in enumerate(leaves) for _ in group])
        adv_B = ADVANTAGES[a.advantage](reward_B, group_B, AdvantageConfig(a.adv_eps))
        rows = []
        for tree, group, adv_G in zip(trees, leaves, adv_B.split([len(g) for g in leaves])):
            adv = {leaf.id: float(x) for leaf, x in zip(group, adv_G)}
            record_credit(tree, adv)
            rows += flatten(tree, adv, per_leaf=True, clip_low=a.clip_low, clip_high=a.clip_high, mask_truncated=a.mask_truncated)
        return Credit(rows, adv_B.tolist())
