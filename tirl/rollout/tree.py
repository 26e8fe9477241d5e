"""Building one task's ``RolloutTree`` (``tirl.types``; DESIGN.md, "The core types") from how its
trajectories were sampled, and the per-step tree metrics.

The root holds the prompt. Every other node is one step: an assistant action (its POLICY or
EXPERT segment), the tool call it made and the TOOL segment that answered. A node's children
are the continuations sampled from the fixed prefix that ends with it; a leaf is the last step
of a complete trajectory and carries that trajectory (and so its reward). A flat group is a
tree whose only branching node is the root; ARPO forks a path after a tool observation; ELPO
continues a failed path from the prefix that ends after its m-th tool output; E3-TIR continues
an expert trajectory from its anchors.

Token exactness: the ids of a root-to-leaf path (prompt, then each node's segments) are exactly
the leaf trajectory's ids, which are the ids the engine sampled (``build_tree`` checks it).
Rows are laid over the paths by ``tirl.train.rows.flatten``; trees are written and read by
``tirl.rollout.io``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tirl.types import LeafRole, Origin, RolloutTree, Segment, Step, StopReason, Trajectory, TreeNode


@dataclass
class Branch:
    """How one trajectory was sampled: from the prompt (``parent`` None) or as a continuation
    of the ``parent``-th trajectory (an index into the same list) after its first
    ``shared_steps`` steps, which it shares token for token. ``role`` and ``anchor_step`` are
    E3-TIR's (what kind of experience the trajectory is; the expert steps an anchor keeps)."""

    traj: Trajectory
    parent: int | None = None
    shared_steps: int = 0
    role: LeafRole | None = None
    anchor_step: int | None = None


def _step_segments(traj: Trajectory, step: Step) -> list[Segment]:
    end = step.tool_segment if step.tool_segment is not None else step.action_segment
    return traj.segments[step.action_segment : end + 1]


def build_tree(
    task_id: str,
    branches: Sequence[Branch],
    *,
    strategy: str = "",
    rollouts: int | None = None,
    meta: dict[str, Any] | None = None,
    drop_errors: bool = True,
) -> RolloutTree:
    """The tree of trajectories sampled as ``branches`` describe. Trajectories stopped by an
    infrastructure failure are left out (``dropped`` counts them): they are never scored
    (DESIGN.md invariant 5); the steps they share with kept trajectories stay. Node ids are
    paths: the root is ``"0"``, its children ``"0.0"``, ``"0.1"``, and so on in sampling order.
    ``rollouts`` (default: every branch) counts the policy's samples; ``meta`` is the sampler's
    report for the saved tree."""
    if not branches:
        raise ValueError(f"task {task_id!r}: a rollout tree needs at least one trajectory")
    prompt = branches[0].traj.prompt_token_ids
    root = TreeNode("0", [Segment(Origin.PROMPT, list(prompt))])
    node_of: list[list[TreeNode]] = []
    for i, b in enumerate(branches):
        tr = b.traj
        if tr.task_id != task_id:
            raise ValueError(f"trajectory of task {tr.task_id!r} in the tree of task {task_id!r}")
        if tr.prompt_token_ids != prompt:
            raise ValueError(f"task {task_id!r}: trajectory {i} has a different prompt than trajectory 0")
        if not tr.steps:
            raise ValueError(f"task {task_id!r}: trajectory {i} has no steps")
        if b.parent is None:
            if b.shared_steps:
                raise ValueError(f"task {task_id!r}: trajectory {i} shares {b.shared_steps} steps but has no parent")
            shared: list[TreeNode] = []
        else:
            if not 0 <= b.parent < i:
                raise ValueError(f"task {task_id!r}: trajectory {i} names parent {b.parent}; a parent must come earlier in the list")
            p = branches[b.parent].traj
            if not 0 < b.shared_steps < len(p.steps) + 1 or b.shared_steps > len(tr.steps):
                raise ValueError(
                    f"task {task_id!r}: trajectory {i} cannot share {b.shared_steps} steps with its parent ({len(p.steps)} steps) having {len(tr.steps)}"
                )
            for k in range(b.shared_steps):
                if [s.token_ids for s in _step_segments(tr, tr.steps[k])] != [s.token_ids for s in _step_segments(p, p.steps[k])]:
                    raise ValueError(f"task {task_id!r}: trajectory {i} differs from its parent {b.parent} in shared step {k + 1}")
            shared = node_of[b.parent][: b.shared_steps]
        nodes = list(shared)
        cur = nodes[-1] if nodes else root
        covered = sum(len(_step_segments(tr, s)) for s in tr.steps)
        if covered != len(tr.segments):
            raise ValueError(f"task {task_id!r}: trajectory {i}'s steps cover {covered} of its {len(tr.segments)} segments")
        for step in tr.steps[len(shared) :]:
            node = TreeNode("", _step_segments(tr, step), step.call, step.observation, parent=cur)
            cur.children.append(node)
            nodes.append(node)
            cur = node
        node_of.append(nodes)
    dropped = 0
    for i, b in enumerate(branches):
        leaf = node_of[i][-1]
        if leaf.trajectory is not None or leaf.children:
            raise ValueError(f"task {task_id!r}: trajectory {i} ends where another trajectory continues; a continuation must add a step")
        if drop_errors and b.traj.stop_reason is StopReason.ERROR:
            dropped += 1
            continue
        leaf.trajectory = b.traj
        leaf.fork_step = b.shared_steps
        leaf.parent_sample = branches[b.parent].traj.sample if b.parent is not None else None
        leaf.role, leaf.anchor_step = b.role, b.anchor_step
    for i in range(len(branches)):
        _prune(node_of[i][-1])
    _assign_ids(root)
    return RolloutTree(
        task_id,
        root,
        branches[0].traj.gold,
        strategy=strategy,
        rollouts=len(branches) if rollouts is None else rollouts,
        dropped=dropped,
        meta=dict(meta or {}),
    )


def _assign_ids(root: TreeNode) -> None:
    def walk(node: TreeNode, nid: str) -> None:
        node.id = nid
        for j, c in enumerate(node.children):
            walk(c, f"{nid}.{j}")

    walk(root, "0")


def _prune(node: TreeNode) -> None:
    """Remove a childless node that ends no kept trajectory, and its ancestors that become so."""
    while node.parent is not None and not node.children and node.trajectory is None:
        node.parent.children.remove(node)
        node = node.parent


def tree_metrics(trees: Sequence[RolloutTree]) -> dict[str, float]:
    """Per-step tree statistics: rollouts sampled per task, branch depth, steps, how many leaves
    are continuations of another path and how often those succeed (``correct`` reward), and
    ELPO's critical step positions (t_crit and K per reference path)."""
    if not trees:
        return {}
    n = len(trees)
    leaves = [leaf for t in trees for leaf in t.leaves()]
    branches = [leaf for leaf in leaves if leaf.fork_step > 0]
    m = {
        "tree/rollouts_per_task": sum(t.rollouts for t in trees) / n,
        "tree/depth": sum(t.depth for t in trees) / n,
        "tree/depth_max": float(max(t.depth for t in trees)),
        "tree/steps_max": float(max(t.max_steps for t in trees)),
        "tree/branches_per_task": len(branches) / n,
    }
    if branches:
        m["tree/branch_success"] = sum(1 for b in branches if b.trajectory.rewards.get("correct", 0.0) >= 1.0) / len(branches)
    crit = [c for t in trees for c in t.critical]
    if crit:
        m["tree/critical_step"] = sum(c.t_crit for c in crit) / len(crit)
        m["tree/critical_n_steps"] = sum(c.k for c in crit) / len(crit)
        with_steps = [c for c in crit if c.k > 0]
        if with_steps:
            m["tree/critical_pos"] = sum(c.t_crit / c.k for c in with_steps) / len(with_steps)
        m["tree/critical_per_task"] = len(crit) / n
    return m
