"""``arpo``: entropy-adaptive branching (``tirl.rollout.arpo``; ALGORITHMS.md §3). GRPO over all
leaves of each tree as one group; soft attribution gives every row its leaf's advantage, hard
attribution every token of a step the mean advantage of the leaves below it
(``tirl.algo.tree_advantages.leaf_mean_advantages``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tirl.algo import ADVANTAGES, AdvantageConfig
from tirl.algo.tree_advantages import leaf_mean_advantages
from tirl.rollout.arpo import arpo_rollout
from tirl.train.rows import flatten
from tirl.train.strategies.base import Credit, StepContext, Strategy, record_credit
from tirl.types import RolloutTree, Task


class ARPOStrategy(Strategy):
    name = "arpo"

    async def sample(self, tasks: Sequence[Task], ctx: StepContext) -> list[RolloutTree]:
        return await arpo_rollout(ctx.engine, ctx.protocol, tasks, ctx.rollout, self.cfg.strategy.arpo, ctx.rng)

    def leaf_advantages(self, tree: RolloutTree) -> dict[str, float]:
        """``algo.advantage`` (GRPO by default) over the tree's leaves as one group."""
        a = self.cfg.algo
        leaves = tree.leaves()
        reward_B = torch.tensor([leaf.reward for leaf in leaves])
        adv_B = ADVANTAGES[a.advantage](reward_B, torch.zeros(len(leaves), dtype=torch.long), AdvantageConfig(a.adv_eps))
        return {leaf.id: float(x) for leaf, x in zip(leaves, adv_B)}

    def credit(self, trees: Sequence[RolloutTree]) -> Credit:
        a, s = self.cfg.algo, self.cfg.strategy
        rows, values = [], []
        for tree in trees:
            leaf_adv = self.leaf_advantages(tree)
            soft = s.arpo.attribution == "soft"
            adv = leaf_adv if soft else leaf_mean_advantages(tree, leaf_adv)
            record_credit(tree, adv)
            values += list(adv.values())
            rows += flatten(
                tree, adv, per_leaf=soft, clip_low=a.clip_low, clip_high=a.clip_high, dedupe_prefix=s.dedupe_prefix, mask_truncated=a.mask_truncated
            )
        return Credit(rows, values)
