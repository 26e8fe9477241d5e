"""A saved rollout tree as the viewer draws it: one ``NodeView`` per node with its step's text,
tool call, the advantage and clip bound it was trained with, forks, ELPO's critical steps and
error-localised clipping region, and for ELPO trees the two terms of the hierarchical advantage
recomputed from the tree (``tirl.algo.tree_advantages.hierarchical_parts``)."""

from __future__ import annotations

from collections.abc import Callable

from tirl.algo.tree_advantages import hierarchical_parts
from tirl.report.model import NodeView, TreeView
from tirl.report.tokens import TokenText
from tirl.report.trajectories import call_code, critical_nodes, widened
from tirl.types import Origin, RolloutTree

TEXT_CHARS = 600
OUTPUT_CHARS = 300


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def tree_view(
    tree: RolloutTree,
    step: int,
    tok: TokenText | None,
    clip_low: float | None,
    adv_eps: float = 1e-6,
    trajectory_key: Callable[[int], str | None] = lambda sample: None,
) -> TreeView:
    """``trajectory_key(sample)``: the key of a leaf's embedded trajectory, or None."""
    parts: tuple[dict, dict] = ({}, {})
    if tree.strategy == "elpo":
        try:
            parts = hierarchical_parts(tree, adv_eps)
        except ValueError:  # a leaf without a finite reward: show the tree without the terms
            parts = ({}, {})
    crit = critical_nodes(tree)
    nodes = []
    for n in tree.nodes():
        own = [s for s in n.segments if s.origin in (Origin.POLICY, Origin.EXPERT)]
        if n.parent is None:
            text = tok.decode(n.tokens) if tok is not None else "(the prompt)"
        elif tok is not None and own:
            text = tok.decode([t for s in own for t in s.token_ids])
        else:
            text = ""
        o = n.observation
        traj = n.trajectory
        v = NodeView(
            id=n.id,
            parent=n.parent.id if n.parent is not None else None,
            depth=n.depth,
            text=_cut(text, TEXT_CHARS),
            code=_cut(call_code(n.call), TEXT_CHARS) if n.call is not None else None,
            output=_cut(o.output, OUTPUT_CHARS) if o is not None else None,
            tool_ok=(o.ok and not o.timed_out) if o is not None else None,
            fork=len(n.children) > 1,
            advantage=n.advantage,
            a_branch=_r(parts[0].get(n.id)),
            a_traj=_r(parts[1].get(n.id)),
            clip_low=n.clip_low,
            widened=widened(n, clip_low),
            critical=n.id in crit,
        )
        if traj is not None:
            v.sample = traj.sample
            v.reward = round(float(traj.reward), 4)
            v.correct = traj.rewards.get("correct", 0.0) >= 1.0 if "correct" in traj.rewards else None
            v.success = n.success
            v.role = n.role.value if n.role else None
            v.fork_step = n.fork_step
            v.parent_sample = n.parent_sample
            v.stop_reason = traj.stop_reason.value if traj.stop_reason else None
            v.trajectory = trajectory_key(traj.sample)
            if not text:
                v.text = _cut(traj.text, TEXT_CHARS)
        nodes.append(v)
    return TreeView(
        step=step,
        task_id=tree.task_id,
        strategy=tree.strategy,
        rollouts=tree.rollouts,
        dropped=tree.dropped,
        nodes=nodes,
        critical=[{"leaf": c.leaf, "sample": c.sample, "t_crit": c.t_crit, "k": c.k} for c in tree.critical],
        meta=dict(tree.meta),
    )


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
