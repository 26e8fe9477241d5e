"""Credit on rollout trees: per-node advantages and per-node clip bounds.

Every function takes a ``tirl.types.RolloutTree`` (built by ``tirl.rollout.tree.build_tree`` or
read by ``tirl.rollout.io.tree_from_json``; only its structure, the leaves' rewards and the typed
lineage fields are read) and returns ``dict[node_id, float]`` over every non-root node it
concerns. ``tirl.train.rows.flatten`` gives each token of a step its node's value.

- ``hierarchical_advantages``: ELPO (arXiv 2602.09598, §4.2, Eq. 6-10). Node reward r: a leaf's
  is its trajectory reward R, an internal node's is the mean of its *direct children's* r
  (Eq. 6; recursive, not a mean over leaves). Branch advantage among siblings
  ``A_b = (r - mean_sib) / (std_sib + eps)`` with the population std (Eq. 7); an only child
  carries its parent's ``A_b`` (the paper's worked tree, App. B Fig. 4, prints every only
  child with its parent's branch value; "branch = 0.000" appears only below forks whose
  siblings have equal rewards), and an only child of the root gets 0. Trajectory advantage
  ``A_t(leaf) = (R - mean) / (std + eps)`` over all leaves of the tree (Eq. 8), and a node's
  ``A_t`` is the mean over the leaves below it (Eq. 9). ``A_hier = lam A_b + (1 - lam) A_t``
  (Eq. 10, lam = 0.5).
- ``leaf_mean_advantages``: ARPO's hard attribution (Dong et al., arXiv 2507.19849, "advantage
  attribution estimation"):
  a node's value is the mean of the leaf advantages of the branches through it, so a token
  shared by d branches gets their mean and a token after the last fork its own leaf's value.
- ``elc_clip_low``: ELPO's error-localised clipping (§4.3; the surrogate is Eq. 12): on the steps
  ``t_crit..T`` of each reference failure (``tree.critical``, recorded by the BEL rollout) the
  lower clip bound widens from ``eps_low`` to ``eps_low + eps_elc``; elsewhere it stays
  ``eps_low``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from tirl.types import RolloutTree, TreeNode


def _leaves(node: TreeNode) -> list[TreeNode]:
    if not node.children:
        return [node]
    return [leaf for c in node.children for leaf in _leaves(c)]


def _check_tree(tree: RolloutTree) -> list[TreeNode]:
    if not tree.root.children:
        raise ValueError("the tree has no nodes below its root")
    leaves = _leaves(tree.root)
    for leaf in leaves:
        r = leaf.reward
        if r is None or not math.isfinite(r):
            raise ValueError(f"leaf {leaf.id!r} has no finite reward ({r!r})")
    return leaves


def _pop_stats(values: list[float]) -> tuple[float, float]:
    """Mean and population std (ddof 0, ALGORITHMS.md §1)."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _mean_below(node: TreeNode, leaf_value: Mapping[int, float], out: dict[str, float]) -> tuple[float, int]:
    """Sum and count of leaf values below ``node``; records each non-root node's mean in ``out``."""
    if not node.children:
        total, count = leaf_value[id(node)], 1
    else:
        total, count = 0.0, 0
        for c in node.children:
            s, k = _mean_below(c, leaf_value, out)
            total, count = total + s, count + k
    if node.parent is not None:
        out[node.id] = total / count
    return total, count


def hierarchical_advantages(tree: RolloutTree, lam: float = 0.5, eps: float = 1e-6) -> dict[str, float]:
    """ELPO's A_hier for every non-root node, keyed by node id (see the module docstring)."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    a_b, a_t = hierarchical_parts(tree, eps)
    # Eq. 10
    return {nid: lam * a_b[nid] + (1.0 - lam) * a_t[nid] for nid in a_t}


def hierarchical_parts(tree: RolloutTree, eps: float = 1e-6) -> tuple[dict[str, float], dict[str, float]]:
    """ELPO's two terms for every non-root node: the branch advantage A_b (Eq. 7) and the
    trajectory advantage A_t (Eq. 8-9), which ``hierarchical_advantages`` mixes (the report
    shows both)."""
    leaves = _check_tree(tree)

    # Eq. 6: node reward, leaves up
    r: dict[int, float] = {}

    def node_reward(n: TreeNode) -> float:
        r[id(n)] = float(n.reward) if not n.children else sum(node_reward(c) for c in n.children) / len(n.children)
        return r[id(n)]

    node_reward(tree.root)

    # Eq. 7: branch advantage among siblings; an only child carries its parent's (App. B, Fig. 4)
    a_b: dict[str, float] = {}
    stack = [tree.root]
    while stack:
        n = stack.pop()
        kids = n.children
        if len(kids) == 1:
            a_b[kids[0].id] = a_b.get(n.id, 0.0) if n.parent is not None else 0.0
        elif kids:
            mean, std = _pop_stats([r[id(c)] for c in kids])
            for c in kids:
                a_b[c.id] = (r[id(c)] - mean) / (std + eps)
        stack.extend(kids)

    # Eq. 8-9: trajectory advantage over all leaves, averaged over the leaves below each node
    mean, std = _pop_stats([float(leaf.reward) for leaf in leaves])
    a_t: dict[str, float] = {}
    _mean_below(tree.root, {id(leaf): (float(leaf.reward) - mean) / (std + eps) for leaf in leaves}, a_t)
    return a_b, a_t


def leaf_mean_advantages(tree: RolloutTree, leaf_advantage: Mapping[str, float]) -> dict[str, float]:
    """ARPO hard attribution: each non-root node gets the mean of ``leaf_advantage`` (keyed by
    leaf id) over the leaves below it."""
    leaves = _check_tree(tree)
    missing = [leaf.id for leaf in leaves if leaf.id not in leaf_advantage]
    if missing:
        raise KeyError(f"no advantage for leaves {missing}")
    out: dict[str, float] = {}
    _mean_below(tree.root, {id(leaf): float(leaf_advantage[leaf.id]) for leaf in leaves}, out)
    return out


def elc_clip_low(
    tree: RolloutTree,
    eps_low: float = 0.2,
    eps_elc: float = 0.115,
    scope: Literal["reference", "failed_branches"] = "reference",
) -> dict[str, float]:
    """Lower clip bound ``eps_low + eps_elc`` for the nodes ELC widens (nodes not named keep
    ``eps_low``). ``tree.critical`` lists the reference failures (a leaf id and ``t_crit``,
    steps numbered from 1). The critical suffix is the reference path's steps at depth
    >= t_crit. With scope ``failed_branches`` the own steps of failed continuations of that
    reference sampled from a prefix at or after t_crit (they share the irrecoverable prefix)
    are widened too; a leaf failed unless its ``success`` is true (the BEL rollout records its
    binary success predicate there).
    """
    if scope not in ("reference", "failed_branches"):
        raise ValueError(f"unknown ELC scope {scope!r} (reference, failed_branches)")
    wide = eps_low + eps_elc
    by_id = {n.id: n for n in _all_nodes(tree.root)}
    out: dict[str, float] = {}
    _check_tree(tree)
    for c in tree.critical:
        leaf = by_id.get(c.leaf)
        if leaf is None or leaf.children:
            raise ValueError(f"critical step names {c.leaf!r}, which is not a leaf of the tree")
        t_crit = int(c.t_crit)
        if t_crit < 1:
            raise ValueError(f"t_crit counts steps from 1, got {t_crit}")
        path = _path(leaf)
        for depth, node in enumerate(path):
            if depth >= t_crit:
                out[node.id] = wide
        if scope == "failed_branches":
            ref_sample = leaf.sample
            for other in _leaves(tree.root):
                fork = other.fork_step
                if other is leaf or other.parent_sample != ref_sample or fork < t_crit or other.success:
                    continue
                for depth, node in enumerate(_path(other)):
                    if depth > fork:
                        out[node.id] = wide
    return out


def _all_nodes(node: TreeNode) -> list[TreeNode]:
    return [node] + [n for c in node.children for n in _all_nodes(c)]


def _path(node: TreeNode) -> list[TreeNode]:
    out = []
    while node is not None:
        out.append(node)
        node = node.parent
    return out[::-1]
