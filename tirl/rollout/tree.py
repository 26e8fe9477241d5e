"""RolloutTree: one task's rollouts as a tree of steps (DESIGN.md, "The core types").

The root holds the prompt. Every other node is one step: an assistant action (its POLICY or
EXPERT segment), the tool call it made and the TOOL segment that answered. A node's children
are the continuations sampled from the fixed prefix that ends with it; a leaf is the last step
of a complete trajectory and carries that trajectory (and so its reward). A flat group is a
tree whose only branching node is the root; ARPO forks a path after a tool observation; ELPO
continues a failed path from the prefix that ends after its m-th tool output.

Token exactness: the ids of a root-to-leaf path (prompt, then each node's segments) are exactly
the leaf trajectory's ids, which are the ids the engine sampled (``from_lineage`` checks it).

``flatten`` lays the training arrays over the root-to-leaf rows. Credit comes in per node
(ELPO's hierarchical advantage, ARPO's hard attribution: every token of a step gets its node's
value) or per leaf (GRPO and ARPO's soft attribution: every token of a row gets its leaf's
value). The loss mask always comes from ``tirl.rollout.masks.loss_mask``, so tool and prompt
tokens are never trained. With ``dedupe_prefix`` a token shared by several rows is trained in
exactly one of them (the first row, in leaf order, where it is trainable); its other copies
get ``detach = 1`` (the loss, the token count and the aggregation skip them, see
``tirl.train.update``) while ``loss_mask`` keeps saying which tokens are the policy's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from tirl.rollout.masks import loss_mask
from tirl.types import Observation, Origin, Segment, Step, StopReason, ToolCall, TrainRow, Trajectory


@dataclass(eq=False)
class TreeNode:
    """The root (``segments`` = the prompt as one PROMPT segment) or one step.

    ``trajectory`` is set on leaves only: the complete root-to-leaf trajectory, whose
    ``reward`` is the leaf's reward. ``info`` holds what strategies and credit assignment
    record about the node (a leaf's ``sample``, ``fork_step`` and ``parent`` sample; the
    advantage it was trained with); it is serialised with the node.
    """

    id: str
    segments: list[Segment] = field(default_factory=list)
    call: ToolCall | None = None
    observation: Observation | None = None
    parent: TreeNode | None = field(default=None, repr=False)
    children: list[TreeNode] = field(default_factory=list, repr=False)
    trajectory: Trajectory | None = field(default=None, repr=False)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> list[int]:
        return [t for s in self.segments for t in s.token_ids]

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @property
    def reward(self) -> float | None:
        """The leaf's trajectory reward; None for internal nodes (their value is derived)."""
        return self.trajectory.reward if self.trajectory is not None else None

    @property
    def depth(self) -> int:
        """Steps from the root (the root is 0, a first step 1)."""
        d, n = 0, self
        while n.parent is not None:
            d, n = d + 1, n.parent
        return d

    def path(self) -> list[TreeNode]:
        """Root to this node, inclusive."""
        out, n = [], self
        while n is not None:
            out.append(n)
            n = n.parent
        return out[::-1]


@dataclass
class Branch:
    """How one trajectory was sampled: from the prompt (``parent`` None) or as a continuation
    of the ``parent``-th trajectory (an index into the same list) after its first
    ``shared_steps`` steps, which it shares token for token."""

    traj: Trajectory
    parent: int | None = None
    shared_steps: int = 0


def _step_segments(traj: Trajectory, step: Step) -> list[Segment]:
    end = step.tool_segment if step.tool_segment is not None else step.action_segment
    return traj.segments[step.action_segment : end + 1]


class RolloutTree:
    """One task's tree. ``meta`` holds what the strategy reports (``strategy``, ``rollouts``
    sampled, ``dropped`` infrastructure failures, ELPO's ``critical`` steps)."""

    def __init__(self, task_id: str, root: TreeNode, meta: dict[str, Any] | None = None, gold: Any = None):
        self.task_id = task_id
        self.root = root
        self.meta = dict(meta or {})
        self.gold = gold

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_lineage(cls, task_id: str, branches: Sequence[Branch], meta: dict[str, Any] | None = None, drop_errors: bool = True) -> RolloutTree:
        """Build the tree of trajectories sampled as ``branches`` describe. Trajectories
        stopped by an infrastructure failure are left out (``meta['dropped']`` counts them):
        they are never scored (DESIGN.md invariant 5); the steps they share with kept
        trajectories stay. Node ids are paths: the root is ``"0"``, its children ``"0.0"``,
        ``"0.1"``, and so on in sampling order."""
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
                    raise ValueError(f"task {task_id!r}: trajectory {i} cannot share {b.shared_steps} steps with its parent ({len(p.steps)} steps) having {len(tr.steps)}")
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
            leaf.info.update({"sample": b.traj.sample, "fork_step": b.shared_steps})
            if b.parent is not None:
                leaf.info["parent"] = branches[b.parent].traj.sample
        for i in range(len(branches)):
            _prune(node_of[i][-1])
        tree = cls(task_id, root, {**(meta or {}), "dropped": dropped}, branches[0].traj.gold)
        tree.meta.setdefault("rollouts", len(branches))
        tree._assign_ids()
        return tree

    def _assign_ids(self) -> None:
        def walk(node: TreeNode, nid: str) -> None:
            node.id = nid
            for j, c in enumerate(node.children):
                walk(c, f"{nid}.{j}")

        walk(self.root, "0")

    # -- reading ----------------------------------------------------------------------------
    def nodes(self) -> Iterator[TreeNode]:
        """Every node, root first, depth-first in child order."""
        stack = [self.root]
        while stack:
            n = stack.pop()
            yield n
            stack.extend(reversed(n.children))

    def leaves(self) -> list[TreeNode]:
        return [n for n in self.nodes() if n.is_leaf and n is not self.root]

    def trajectories(self) -> list[Trajectory]:
        """The leaves' trajectories, in leaf order (the task's group for rewards and GRPO)."""
        return [n.trajectory for n in self.leaves()]

    def node(self, node_id: str) -> TreeNode:
        for n in self.nodes():
            if n.id == node_id:
                return n
        raise KeyError(f"tree of task {self.task_id!r} has no node {node_id!r}")

    def leaf_for_sample(self, sample: int) -> TreeNode | None:
        for leaf in self.leaves():
            if leaf.info.get("sample") == sample:
                return leaf
        return None

    @property
    def depth(self) -> int:
        """Branch depth: the most branching nodes (more than one child) on a root-to-leaf path;
        a flat group of two or more has depth 1."""

        def walk(n: TreeNode) -> int:
            here = 1 if len(n.children) > 1 else 0
            return here + max((walk(c) for c in n.children), default=0)

        return walk(self.root)

    @property
    def max_steps(self) -> int:
        return max((leaf.depth for leaf in self.leaves()), default=0)

    # -- training rows ----------------------------------------------------------------------
    def flatten(
        self,
        advantage: Mapping[str, float],
        *,
        per_leaf: bool = False,
        clip_low: float = 0.2,
        clip_high: float = 0.2,
        clip_low_nodes: Mapping[str, float] | None = None,
        dedupe_prefix: bool = False,
        mask_truncated: bool = False,
    ) -> list[TrainRow]:
        """One TrainRow per leaf (root-to-leaf ids, leaf order).

        ``advantage`` maps node ids to values: with ``per_leaf`` every token of a row gets its
        leaf's value (soft attribution, shared tokens take each row's own value); otherwise
        every token of a step gets its node's value (every non-root node on a path must have
        one). ``clip_low_nodes`` overrides ``clip_low`` on the tokens of the nodes it names
        (ELPO's error-localised clipping). ``dedupe_prefix`` trains each shared token once
        (the other copies are detached); it needs node values, since a single trained copy
        cannot carry each row's own value. Advantages are zero on untrained tokens.
        """
        if dedupe_prefix and per_leaf:
            raise ValueError("dedupe_prefix trains each shared token once, so it needs per-node advantages (e.g. ARPO's hard attribution), not per-leaf ones")
        clip_low_nodes = clip_low_nodes or {}
        claimed: set[int] = set()
        rows = []
        for leaf in self.leaves():
            tr = leaf.trajectory
            ids = tr.token_ids
            mask = [float(m) for m in loss_mask(tr, mask_truncated=mask_truncated)]
            adv, low, detach = [], [], []
            if per_leaf and leaf.id not in advantage:
                raise KeyError(f"tree of task {self.task_id!r}: no advantage for leaf {leaf.id!r}")
            for node in leaf.path():
                n = len(node.tokens)
                if node is self.root:
                    value = 0.0
                elif per_leaf:
                    value = advantage[leaf.id]
                elif node.id in advantage:
                    value = advantage[node.id]
                else:
                    raise KeyError(f"tree of task {self.task_id!r}: no advantage for node {node.id!r}")
                start = len(adv)
                adv.extend([float(value)] * n)
                low.extend([float(clip_low_nodes.get(node.id, clip_low))] * n)
                if dedupe_prefix and node is not self.root and id(node) in claimed:
                    detach.extend([1.0] * n)
                else:
                    detach.extend([0.0] * n)
                    if any(mask[start : start + n]):
                        claimed.add(id(node))
            if len(adv) != len(ids):
                raise ValueError(f"tree of task {self.task_id!r}: leaf {leaf.id!r} path has {len(adv)} tokens, its trajectory {len(ids)}")
            old = [0.0] * len(tr.prompt_token_ids)
            off = [0.0] * len(tr.prompt_token_ids)
            for seg in tr.segments:
                old.extend(seg.logprobs if seg.logprobs is not None and len(seg.logprobs) == len(seg) else [0.0] * len(seg))
                off.extend([1.0 if seg.origin is Origin.EXPERT else 0.0] * len(seg))
            rows.append(TrainRow(
                input_ids=list(ids), loss_mask=mask, advantage=[a * m for a, m in zip(adv, mask)], old_logprob=old,
                clip_low=low, clip_high=[float(clip_high)] * len(ids), offpolicy=off, detach=detach,
                task_id=tr.task_id, sample=tr.sample,
            ))
        return rows

    # -- JSON -------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """Nested JSON: the root's object (``id``, ``tokens`` = the prompt, ``children``) with
        ``task_id``, ``gold`` and ``meta``; a step node adds its ``segments``, ``call`` and
        ``observation``; a leaf adds ``reward`` and the rest of its trajectory's outcome."""

        def node_json(n: TreeNode) -> dict:
            d: dict[str, Any] = {"id": n.id}
            if n is self.root:
                d.update({"task_id": self.task_id, "gold": self.gold, "meta": self.meta, "tokens": n.tokens})
            else:
                d["segments"] = [{"origin": s.origin.value, "token_ids": s.token_ids, "logprobs": s.logprobs, "entropy": s.entropy} for s in n.segments]
                d["call"] = None if n.call is None else {"name": n.call.name, "arguments": n.call.arguments, "raw": n.call.raw, "error": n.call.error}
                o = n.observation
                d["observation"] = None if o is None else {"ok": o.ok, "output": o.output, "error": o.error, "timed_out": o.timed_out, "latency_ms": o.latency_ms, "infra_error": o.infra_error}
            if n.info:
                d["info"] = n.info
            if n.trajectory is not None:
                t = n.trajectory
                d.update({"reward": t.reward, "rewards": t.rewards, "sample": t.sample, "answer": t.answer,
                          "stop_reason": t.stop_reason.value if t.stop_reason else None, "metrics": t.metrics, "text": t.text})
            d["children"] = [node_json(c) for c in n.children]
            return d

        return node_json(self.root)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RolloutTree:
        """Inverse of ``to_json``. Also reads hand-written trees: only ``id``, ``children`` and
        the leaves' ``reward`` are required (segments and the prompt default to empty)."""
        root = TreeNode(str(d["id"]), [Segment(Origin.PROMPT, list(d.get("tokens", [])))], info=dict(d.get("info", {})))
        task_id = str(d.get("task_id", ""))
        gold = d.get("gold")
        seen: set[str] = set()

        def build(nd: Mapping[str, Any], parent: TreeNode) -> None:
            for c in nd.get("children", []):
                if "id" not in c:
                    raise ValueError(f"a child of node {parent.id!r} has no id")
                nid = str(c["id"])
                if nid in seen:
                    raise ValueError(f"node id {nid!r} appears twice")
                seen.add(nid)
                segs = [Segment(Origin(s["origin"]), list(s["token_ids"]), s.get("logprobs"), s.get("entropy")) for s in c.get("segments", [])]
                cj, oj = c.get("call"), c.get("observation")
                call = None if cj is None else ToolCall(cj["name"], cj.get("arguments", {}), cj.get("raw", ""), cj.get("error"))
                obs = None if oj is None else Observation(oj["ok"], oj.get("output", ""), oj.get("error"), oj.get("timed_out", False), oj.get("latency_ms", 0.0), oj.get("infra_error", False))
                node = TreeNode(nid, segs, call, obs, parent=parent, info=dict(c.get("info", {})))
                parent.children.append(node)
                build(c, node)
                if not node.children:
                    if not isinstance(c.get("reward"), (int, float)) or isinstance(c.get("reward"), bool):
                        raise ValueError(f"leaf {nid!r} needs a numeric reward, got {c.get('reward')!r}")
                    node.trajectory = _path_trajectory(node, task_id, gold, c)

        seen.add(root.id)
        build(d, root)
        if not root.children:
            raise ValueError(f"tree {root.id!r} has no children")
        return cls(task_id, root, dict(d.get("meta", {})), gold)


def _path_trajectory(leaf: TreeNode, task_id: str, gold: Any, d: Mapping[str, Any]) -> Trajectory:
    """Rebuild a leaf's trajectory from its path (prompt + step segments) and its JSON outcome."""
    path = leaf.path()
    tr = Trajectory(task_id=task_id, sample=int(d.get("sample", leaf.info.get("sample", 0))), prompt_token_ids=path[0].tokens, gold=gold)
    for node in path[1:]:
        if not node.segments:
            continue
        a = len(tr.segments)
        tr.segments.extend(node.segments)
        has_tool = len(node.segments) > 1
        tr.steps.append(Step(a, node.call, node.observation, a + 1 if has_tool else None))
    tr.reward = float(d["reward"])
    tr.rewards = dict(d.get("rewards", {}))
    tr.answer = d.get("answer")
    tr.stop_reason = StopReason(d["stop_reason"]) if d.get("stop_reason") else None
    tr.metrics = dict(d.get("metrics", {}))
    tr.text = d.get("text", "")
    return tr


def _prune(node: TreeNode) -> None:
    """Remove a childless node that ends no kept trajectory, and its ancestors that become so."""
    while node.parent is not None and not node.children and node.trajectory is None:
        node.parent.children.remove(node)
        node = node.parent


def write_trees(path: str | Path, trees: Iterable[RolloutTree]) -> int:
    """One tree's JSON per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w") as f:
        for t in trees:
            f.write(json.dumps(t.to_json()) + "\n")
            n += 1
    return n


def read_trees(path: str | Path) -> list[RolloutTree]:
    out = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(RolloutTree.from_json(json.loads(line)))
                except (json.JSONDecodeError, KeyError, ValueError, TypeError) as e:
                    raise ValueError(f"{path}:{i}: not a rollout tree ({type(e).__name__}: {e})") from e
    return out


def tree_metrics(trees: Sequence[RolloutTree]) -> dict[str, float]:
    """Per-step tree statistics: rollouts sampled per task, branch depth, steps, how many leaves
    are continuations of another path and how often those succeed (``correct`` reward), and
    ELPO's critical step positions (``meta['critical']``: t_crit and K per reference path)."""
    if not trees:
        return {}
    n = len(trees)
    leaves = [leaf for t in trees for leaf in t.leaves()]
    branches = [leaf for leaf in leaves if leaf.info.get("fork_step", 0) > 0]
    m = {
        "tree/rollouts_per_task": sum(t.meta.get("rollouts", len(t.leaves())) for t in trees) / n,
        "tree/depth": sum(t.depth for t in trees) / n,
        "tree/depth_max": float(max(t.depth for t in trees)),
        "tree/steps_max": float(max(t.max_steps for t in trees)),
        "tree/branches_per_task": len(branches) / n,
    }
    if branches:
        m["tree/branch_success"] = sum(1 for b in branches if b.trajectory.rewards.get("correct", 0.0) >= 1.0) / len(branches)
    crit = [c for t in trees for c in t.meta.get("critical", [])]
    if crit:
        m["tree/critical_step"] = sum(c["t_crit"] for c in crit) / len(crit)
        m["tree/critical_n_steps"] = sum(c["k"] for c in crit) / len(crit)
        with_steps = [c for c in crit if c["k"] > 0]
        if with_steps:
            m["tree/critical_pos"] = sum(c["t_crit"] / c["k"] for c in with_steps) / len(with_steps)
        m["tree/critical_per_task"] = len(crit) / n
    return m
