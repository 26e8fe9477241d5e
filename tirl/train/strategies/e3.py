"""``e3``: E3-TIR's expert-anchored warm-up (ALGORITHMS.md §5, a reconstruction), then ``flat`` or
``arpo`` (``strategy.e3.after_warmup``).

During the warm-up ``sample`` runs ``tirl.rollout.e3.e3_rollout`` (self-exploration, expert
anchors chosen by the policy's entropy on the teacher-forced expert trajectory, continuations
from them, the expert trajectory itself) with the run's expert set
(``tirl.rollout.expert_set.ExpertSet``, kept in ``experts.jsonl`` in the run directory and read
back on resume) and the step context's teacher-forcing scorer. ``credit`` turns the rewarded
trees into rows:

- advantages: ``tirl.algo.mixed.hybrid_advantages`` per leaf, ``A = alpha A_global +
  (1 - alpha) A_tree`` (the sub-trees: self-exploration, each anchor's continuations, the expert
  sample alone), every token of a row takes its leaf's value;
- policy tokens take the PPO-clip loss (``algo.loss``); expert tokens never take the ratio: the
  expert-guided row's expert tokens take the off-policy term (``algo.offpolicy_coef``, LUFFY's
  ``p / (p + gamma)``, ``tirl.algo.offpolicy``) with its advantage; an anchor continuation's row
  carries the expert prefix with the continuation's advantage, so those copies would take that
  term too, which is what AAGD (``tirl.algo.mixed.aagd_nodes``) cuts when the continuations of
  the prefix disagree in sign (``detach = 1``);
- zero-variance tasks are dropped (``filter_zero_variance``).

``after_step`` reports the E3 metrics and the expert costs of the step (expert samples and
tokens obtained, rejected expert trajectories), which the trainer adds to the run's totals.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tirl.algo.advantages import AdvantageConfig
from tirl.algo.mixed import HybridConfig, aagd_nodes, expert_share, hybrid_advantages
from tirl.config import Config
from tirl.rollout.e3 import e3_rollout
from tirl.rollout.expert_set import COST_KEYS, ExpertSet
from tirl.rollout.masks import SFT_ORIGINS, loss_mask
from tirl.train.rows import flatten
from tirl.train.strategies.arpo import ARPOStrategy
from tirl.train.strategies.base import Credit, StepContext, StepReport, Strategy, record_credit
from tirl.train.strategies.flat import FlatStrategy
from tirl.types import LeafRole, RolloutTree, Task, TrainRow, Trajectory, TreeNode

EXPERT_FILE = "experts.jsonl"
"""The run's expert set, in the run directory."""

AFTER_WARMUP = {"flat": FlatStrategy, "arpo": ARPOStrategy}


class E3Strategy(Strategy):
    name = "e3"

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        e = cfg.strategy.e3
        self.e3 = e
        n_cont = e.anchors * e.branches if e.branching else 0
        if cfg.rollout.group_size - n_cont < 1:
            raise ValueError(
                f"strategy e3: rollout.group_size ({cfg.rollout.group_size}) must exceed anchors * branches ({e.anchors} * {e.branches}): "
                "the self-exploration samples that measure the pass rate come out of the same budget"
            )
        self.after = AFTER_WARMUP[e.after_warmup](cfg)
        self.experts: ExpertSet | None = None  # made at the first lookup, where the run directory is known
        self._stats: dict[str, float] = {}

    # -- experts ----------------------------------------------------------------------------
    async def experts_for(self, tasks: Sequence[Task], ctx: StepContext) -> dict[str, Trajectory | None]:
        """Each task's accepted expert trajectory (obtained once per task, within the limit)."""
        if self.experts is None:
            e = self.e3
            self.experts = ExpertSet(
                e.expert,
                temperature=e.expert_temperature,
                correct_only=e.correct_only,
                limit=e.max_expert_samples,
                endpoints=self.cfg.endpoint,
                seed=self.cfg.train.seed,
                path=ctx.run_dir / EXPERT_FILE if ctx.run_dir is not None else None,
            )
            self.experts.open(resumed=ctx.step > 0)  # a resumed run's experts were paid for already
        return await self.experts.get(tasks, ctx.engine, ctx.protocol, ctx.rollout, ctx.expert_samples)

    async def aclose(self) -> None:
        if self.experts is not None:
            await self.experts.aclose()

    # -- sampling ---------------------------------------------------------------------------
    async def sample(self, tasks: Sequence[Task], ctx: StepContext) -> list[RolloutTree]:
        e = self.e3
        if ctx.step >= e.warmup_steps:
            self._stats = {"e3/phase": 0.0}
            return await self.after.sample(tasks, ctx)
        if ctx.scorer is None:
            raise ValueError("strategy e3 needs the policy's teacher-forcing scorer in its step context: anchors are scored by the policy")
        share = expert_share(ctx.step, e.warmup_steps, e.share_start, e.share_schedule)
        trees, self._stats = await e3_rollout(
            ctx.engine, ctx.protocol, tasks, ctx.rollout, e, share, ctx.rng, lambda ts: self.experts_for(ts, ctx), ctx.scorer
        )
        return trees

    # -- credit -----------------------------------------------------------------------------
    def credit(self, trees: Sequence[RolloutTree]) -> Credit:
        if not trees:
            return Credit([])
        if any(t.strategy != "e3" for t in trees):
            return self.after.credit(trees)
        a, e = self.cfg.algo, self.e3
        hcfg = HybridConfig(e.alpha, a.advantage, e.singleton_tree, AdvantageConfig(a.adv_eps))
        rows, values = [], []
        dropped = detached = 0
        for tree in trees:
            leaves = tree.leaves()
            used = [leaf for leaf in leaves if leaf.role is not LeafRole.EXPERT or e.expert_guided]
            rewards = [float(leaf.reward) for leaf in used]
            if len(used) < 2 or (e.filter_zero_variance and max(rewards) - min(rewards) <= 1e-8):
                dropped += 1
                continue
            # sub-trees: self-exploration 0, the expert sample 1, each anchor's continuations 2, 3, ...
            anchor_ids: dict[int, int] = {}
            subgroup = []
            for leaf in used:
                if leaf.role is LeafRole.ANCHOR:
                    subgroup.append(2 + anchor_ids.setdefault(leaf.anchor_step, len(anchor_ids)))
                else:
                    subgroup.append(1 if leaf.role is LeafRole.EXPERT else 0)
            adv_B = hybrid_advantages(torch.tensor(rewards), torch.zeros(len(used), dtype=torch.long), torch.tensor(subgroup), hcfg)
            leaf_adv = {leaf.id: float(x) for leaf, x in zip(used, adv_B)}
            sampled = {lid: v for lid, v in leaf_adv.items() if tree.node(lid).role is not LeafRole.EXPERT}
            cut = aagd_nodes(tree, sampled, e.aagd)
            flat = flatten(
                tree,
                {leaf.id: leaf_adv.get(leaf.id, 0.0) for leaf in leaves},
                per_leaf=True,
                clip_low=a.clip_low,
                clip_high=a.clip_high,
                mask_truncated=a.mask_truncated,
            )
            for leaf, row in zip(leaves, flat):
                if leaf.id not in leaf_adv:
                    continue
                detached += _patch_row(row, leaf, leaf_adv[leaf.id], cut.get(leaf.id, set()), a.mask_truncated)
                rows.append(row)
            record_credit(tree, leaf_adv)
            values += list(leaf_adv.values())
        self._stats.update({"e3/zero_variance_dropped": float(dropped), "e3/aagd_detached_tokens": float(detached)})
        return Credit(rows, values)

    def after_step(self) -> StepReport:
        """This step's E3 metrics and the expert costs spent since the last report."""
        spent = self.experts.take_costs() if self.experts is not None else {}
        metrics = dict(self._stats)
        metrics.update({f"e3/{k}": float(v) for k, v in spent.items()})
        return StepReport(metrics, {k: int(v) for k, v in spent.items() if k in COST_KEYS})


def _patch_row(row: TrainRow, leaf: TreeNode, advantage: float, cut: set[str], mask_truncated: bool) -> int:
    """Lay E3's arrays over a flattened row: expert tokens carry the row's advantage (for the
    off-policy term), AAGD's nodes are detached, and so are the expert tokens of a row that
    must not be trained at all (void turn, error, masked truncation). Returns the policy or
    expert tokens AAGD detached."""
    trainable = any(loss_mask(leaf.trajectory, mask_truncated=mask_truncated, origins=SFT_ORIGINS))
    n_detached = 0
    pos = 0
    for node in leaf.path():
        n = len(node.tokens)
        if node.id in cut:
            for t in range(pos, pos + n):
                if row.loss_mask[t] or row.offpolicy[t]:
                    n_detached += 1
                row.detach[t] = 1.0
        pos += n
    for t, off in enumerate(row.offpolicy):
        if off:
            row.advantage[t] = advantage
            if not trainable:
                row.detach[t] = 1.0
    return n_detached
