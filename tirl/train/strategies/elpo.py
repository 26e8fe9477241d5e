"""``elpo``: BEL trees (``tirl.rollout.elpo``; ALGORITHMS.md §4), hierarchical advantages per step
and error-localised lower clip bounds on the critical suffixes the search recorded
(``tirl.algo.tree_advantages``)."""

from __future__ import annotations

from collections.abc import Sequence

from tirl.algo.tree_advantages import elc_clip_low, hierarchical_advantages
from tirl.rollout.elpo import bel_rollout
from tirl.train.rows import flatten
from tirl.train.strategies.base import Credit, StepContext, Strategy, record_credit
from tirl.types import RolloutTree, Task


class ELPOStrategy(Strategy):
    name = "elpo"

    async def sample(self, tasks: Sequence[Task], ctx: StepContext) -> list[RolloutTree]:
        return await bel_rollout(ctx.engine, ctx.protocol, tasks, ctx.rollout, self.cfg.strategy.elpo)

    def credit(self, trees: Sequence[RolloutTree]) -> Credit:
        a, s = self.cfg.algo, self.cfg.strategy
        e = s.elpo
        rows, values = [], []
        for tree in trees:
            adv = hierarchical_advantages(tree, e.lam, a.adv_eps)
            low = elc_clip_low(tree, a.clip_low, e.eps_elc, e.elc_scope)
            record_credit(tree, adv, low)
            values += list(adv.values())
            rows += flatten(
                tree,
                adv,
                clip_low=a.clip_low,
                clip_high=a.clip_high,
                clip_low_nodes=low,
                dedupe_prefix=s.dedupe_prefix,
                mask_truncated=a.mask_truncated,
            )
        return Credit(rows, values)
