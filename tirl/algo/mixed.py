"""E3-TIR's mixed policy optimisation as pure functions (ALGORITHMS.md §5; Guo et al. 2026,
arXiv 2604.09455 — a reconstruction: the paper's full text was not available, so every choice
below is a config option whose default is the one ALGORITHMS.md states).

- ``hybrid_advantages``: ``A = alpha * A_global + (1 - alpha) * A_tree``. ``A_global`` is the
  group estimator (GRPO by default) over all samples of the task; ``A_tree`` the same estimator
  within each sample's sub-tree: the samples that share its fork point (the continuations of
  one expert anchor share the expert prefix; the self-exploration samples share the prompt).
  A sample alone in its sub-tree (the expert-guided sample, an anchor with one continuation)
  has no tree baseline: ``singleton="global"`` gives it ``A_tree = A_global`` (default, so the
  hybrid is its global advantage), ``"zero"`` gives it ``A_tree = 0`` (ELPO's choice for an only
  child).
- ``aagd_nodes``: advantage-aware gradient detaching. A node shared by several *sampled* rows
  (continuations of one anchor share the expert prefix; branches share policy steps) would get
  one gradient per row; when those rows' advantages disagree in sign the gradients conflict
  (the paper's ablation without AAGD collapses), so the node's copies in those rows are
  detached. Mode ``"always"`` detaches every shared copy; ``"never"`` detaches none (the ablation).
  Rows that were not sampled (the expert-guided sample: its own off-policy term trains its
  tokens) are left out of the decision and never detached by it.
- ``expert_share``: the share of expert experience at a warm-up step: linear decay from
  ``start`` to 0 over ``warmup_steps`` (default) or constant; 0 after the warm-up, when plain
  GRPO takes over.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch

from tirl.algo.advantages import ADVANTAGES, AdvantageConfig
from tirl.types import RolloutTree, TreeNode


@dataclass(frozen=True)
class HybridConfig:
    alpha: float = 0.5
    """Weight of the global advantage (ALGORITHMS.md §5: 0.5)."""
    base: str = "grpo"
    """Group estimator used for both terms (a key of ``tirl.algo.ADVANTAGES``)."""
    singleton: Literal["global", "zero"] = "global"
    """A_tree of a sample alone in its sub-tree: its global advantage, or 0."""
    adv: AdvantageConfig = field(default_factory=AdvantageConfig)


def hybrid_advantages(reward_B: torch.Tensor, group_B: torch.Tensor, subgroup_B: torch.Tensor, cfg: HybridConfig) -> torch.Tensor:
    """``alpha * A_global + (1 - alpha) * A_tree`` per sample. ``group_B`` is the task of each
    sample, ``subgroup_B`` its sub-tree within the task (ids need only be unique within a task)."""
    if not 0.0 <= cfg.alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {cfg.alpha}")
    if cfg.base not in ADVANTAGES:
        raise ValueError(f"unknown base advantage {cfg.base!r} (known: {', '.join(ADVANTAGES)})")
    if cfg.singleton not in ("global", "zero"):
        raise ValueError(f"singleton must be 'global' or 'zero', got {cfg.singleton!r}")
    if not (len(reward_B) == len(group_B) == len(subgroup_B)):
        raise ValueError(f"{len(reward_B)} rewards, {len(group_B)} groups and {len(subgroup_B)} sub-groups")
    fn = ADVANTAGES[cfg.base]
    a_global_B = fn(reward_B, group_B, cfg.adv)
    # a sub-tree is a (task, sub-group) pair: number the pairs
    _, tree_B, count_S = torch.unique(torch.stack([group_B.long(), subgroup_B.long()], dim=1), dim=0, return_inverse=True, return_counts=True)
    a_tree_B = fn(reward_B, tree_B, cfg.adv)
    alone_B = count_S[tree_B] == 1
    a_tree_B = torch.where(alone_B, a_global_B if cfg.singleton == "global" else torch.zeros_like(a_global_B), a_tree_B)
    return cfg.alpha * a_global_B + (1.0 - cfg.alpha) * a_tree_B


def _leaves(node: TreeNode) -> list[TreeNode]:
    if not node.children:
        return [node]
    return [leaf for c in node.children for leaf in _leaves(c)]


def aagd_nodes(
    tree: RolloutTree, leaf_advantage: Mapping[str, float], mode: Literal["sign", "always", "never"] = "sign", tol: float = 1e-12
) -> dict[str, set[str]]:
    """For each sampled leaf (the keys of ``leaf_advantage``), the ids of the nodes on its path
    whose tokens are detached in its row. A non-root node is shared when two or more sampled
    leaves lie below it; ``sign`` detaches it (in all those rows) when their advantages include
    both a positive and a negative value (|A| <= tol counts as neither), ``always`` whenever it
    is shared, ``never`` never. Leaves not in ``leaf_advantage`` take no part."""
    if mode not in ("sign", "always", "never"):
        raise ValueError(f"unknown AAGD mode {mode!r} (sign, always, never)")
    known = {leaf.id for leaf in _leaves(tree.root)}
    stray = sorted(set(leaf_advantage) - known)
    if stray:
        raise KeyError(f"advantages given for {stray}, which are not leaves of the tree")
    out: dict[str, set[str]] = {lid: set() for lid in leaf_advantage}
    if mode == "never":
        return out
    stack = list(tree.root.children)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        below = [leaf.id for leaf in _leaves(node) if leaf.id in leaf_advantage]
        if len(below) < 2:
            continue
        a = [float(leaf_advantage[lid]) for lid in below]
        if any(not math.isfinite(x) for x in a):
            raise ValueError(f"node {node.id!r}: non-finite advantage among {a}")
        if mode == "always" or sign_disagreement(a, tol):
            for lid in below:
                out[lid].add(node.id)
    return out


def expert_share(step: int, warmup_steps: int, start: float = 1.0, schedule: Literal["linear", "constant"] = "linear") -> float:
    """Share of expert experience at ``step`` (0-based): ``start * (1 - step / warmup_steps)``
    (linear) or ``start`` (constant) while ``step < warmup_steps``, then 0."""
    if step < 0 or warmup_steps < 0:
        raise ValueError(f"step and warmup_steps must be >= 0, got {step} and {warmup_steps}")
    if not 0.0 <= start <= 1.0:
        raise ValueError(f"start share must be in [0, 1], got {start}")
    if step >= warmup_steps:
        return 0.0
    if schedule == "constant":
        return start
    if schedule == "linear":
        return start * (1.0 - step / warmup_steps)
    raise ValueError(f"unknown share schedule {schedule!r} (linear, constant)")


def sign_disagreement(values: Iterable[float], tol: float = 1e-12) -> bool:
    """True when ``values`` hold both a positive and a negative number."""
    v = list(values)
    return any(x > tol for x in v) and any(x < -tol for x in v)
