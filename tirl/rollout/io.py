"""Trajectories and rollout trees on disk: one JSON object per line, one schema for both.

A segment, a tool call, an observation and a trajectory's outcome are written by the same
functions wherever they appear, so a key means the same thing in ``trajectories/*.jsonl`` and
in ``trees/*.jsonl`` (the README documents both):

- segment: ``origin``, ``token_ids``, ``logprobs``, ``entropy``;
- call: ``name``, ``arguments``, ``raw``, ``parse_error`` (the call was malformed; its text is
  what the model read);
- observation: ``output``, ``ok``, ``error``, ``timed_out``, ``latency_ms``, ``infra_error``;
- outcome: ``sample``, ``answer``, ``reward``, ``rewards``, ``stop_reason``, ``metrics``,
  ``text``, ``policy_version`` (the optimiser steps of the weights that sampled it) and, when set, ``error`` (what failed, for stop reason ``error``).

A trajectory line holds its ids, segments, steps, outcome and ``tool_calls`` (each call with its
observation flattened into one object, plus the step's segment indices). A tree line is the
root's object: ``id``, ``task_id``, ``gold``, ``meta`` (the strategy, ``rollouts``, ``dropped``,
ELPO's ``critical`` steps, the sampler's counts), ``tokens`` (the prompt), ``children``; a step
node has ``id``, ``segments``, ``call``, ``observation``, ``info`` (a leaf's ``sample``,
``fork_step``, ``parent``, ``success``, ``role``, ``anchor_step``; the ``advantage`` and
``clip_low`` a node was trained with) and ``children``; a leaf adds its outcome.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tirl.errors import UserError
from tirl.types import (
    CriticalStep,
    LeafRole,
    Observation,
    Origin,
    RolloutTree,
    Segment,
    Step,
    StopReason,
    ToolCall,
    Trajectory,
    TreeNode,
)

# -- the pieces -------------------------------------------------------------------------------


def segment_to_json(s: Segment) -> dict:
    return {"origin": s.origin.value, "token_ids": s.token_ids, "logprobs": s.logprobs, "entropy": s.entropy}


def segment_from_json(d: Mapping[str, Any]) -> Segment:
    return Segment(Origin(d["origin"]), list(d["token_ids"]), d.get("logprobs"), d.get("entropy"))


def call_to_json(c: ToolCall) -> dict:
    return {"name": c.name, "arguments": c.arguments, "raw": c.raw, "parse_error": c.error}


def call_from_json(d: Mapping[str, Any]) -> ToolCall:
    # Tree files written before the schema was unified name a call's error "error"; read for one
    # release (a tree call object has no observation keys, so "error" is unambiguous there).
    return ToolCall(d["name"], d.get("arguments", {}), d.get("raw", ""), d.get("parse_error", d.get("error")))


def observation_to_json(o: Observation) -> dict:
    return {
        "output": o.output,
        "ok": o.ok,
        "error": o.error,
        "timed_out": o.timed_out,
        "latency_ms": round(o.latency_ms, 3),
        "infra_error": o.infra_error,
    }


def observation_from_json(d: Mapping[str, Any]) -> Observation:
    return Observation(
        d["ok"], d.get("output") or "", d.get("error"), d.get("timed_out", False), d.get("latency_ms", 0.0), d.get("infra_error", False)
    )


_NO_OBSERVATION = {"output": None, "ok": False, "error": None, "timed_out": False, "latency_ms": 0.0, "infra_error": False}
"""What a trajectory's tool-call entry says for a call that has no observation."""


def outcome_to_json(tr: Trajectory) -> dict:
    return {
        "sample": tr.sample,
        "answer": tr.answer,
        "reward": tr.reward,
        "rewards": tr.rewards,
        "stop_reason": tr.stop_reason.value if tr.stop_reason else None,
        "metrics": tr.metrics,
        "text": tr.text,
        "policy_version": tr.policy_version,
        **({"error": tr.error} if tr.error else {}),
    }


def _outcome_into(tr: Trajectory, d: Mapping[str, Any]) -> Trajectory:
    tr.answer = d.get("answer")
    tr.reward = d.get("reward", 0.0)
    tr.rewards = dict(d.get("rewards", {}))
    tr.stop_reason = StopReason(d["stop_reason"]) if d.get("stop_reason") else None
    tr.metrics = dict(d.get("metrics", {}))
    tr.text = d.get("text", "")
    tr.error = d.get("error")
    tr.policy_version = int(d.get("policy_version", 0))
    return tr


# -- trajectories -----------------------------------------------------------------------------


def trajectory_to_json(tr: Trajectory) -> dict:
    calls = []
    for s in tr.steps:
        if s.call is None:
            continue
        o = observation_to_json(s.observation) if s.observation is not None else _NO_OBSERVATION
        calls.append({**call_to_json(s.call), **o, "action_segment": s.action_segment, "tool_segment": s.tool_segment})
    return {
        "task_id": tr.task_id,
        "prompt_token_ids": tr.prompt_token_ids,
        "segments": [segment_to_json(seg) for seg in tr.segments],
        "steps": [{"action_segment": s.action_segment, "tool_segment": s.tool_segment} for s in tr.steps],
        "tool_calls": calls,
        "gold": tr.gold,
        **outcome_to_json(tr),
    }


def trajectory_from_json(d: dict) -> Trajectory:
    segments = [segment_from_json(s) for s in d["segments"]]
    by_action = {c["action_segment"]: c for c in d.get("tool_calls", [])}
    steps = []
    for s in d.get("steps", []):
        c = by_action.get(s["action_segment"])
        call = obs = None
        if c is not None:
            call, obs = call_from_json(c), observation_from_json(c)
        steps.append(Step(s["action_segment"], call, obs, s.get("tool_segment")))
    tr = Trajectory(
        task_id=d["task_id"],
        sample=d.get("sample", 0),
        prompt_token_ids=list(d["prompt_token_ids"]),
        segments=segments,
        steps=steps,
        gold=d.get("gold"),
    )
    return _outcome_into(tr, d)


def _write_lines(path: str | Path, items: Iterable, to_json) -> int:
    """One JSON object per line (parent directories created); the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w") as f:
        for item in items:
            f.write(json.dumps(to_json(item)) + "\n")
            n += 1
    return n


def write_jsonl(path: str | Path, trajs: Iterable[Trajectory]) -> int:
    return _write_lines(path, trajs, trajectory_to_json)


class TrajectoryFileError(UserError, ValueError):
    """A trajectory file is missing or holds something that is not a tirl trajectory."""


def read_jsonl(path: str | Path) -> Iterator[Trajectory]:
    p = Path(path)
    if not p.is_file():
        raise TrajectoryFileError(f"trajectory file {p} " + ("is a directory" if p.is_dir() else "not found"))
    with open(p, "rb") as f:
        for i, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                yield trajectory_from_json(json.loads(line))
            except (ValueError, KeyError, TypeError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                msg = " ".join(str(e).split())[:200]
                raise TrajectoryFileError(f"{p}, line {i}: not a tirl trajectory ({type(e).__name__}: {msg})") from e


# -- trees ------------------------------------------------------------------------------------


def _info_json(n: TreeNode) -> dict:
    d: dict[str, Any] = {}
    if n.trajectory is not None:  # lineage is a leaf's
        d.update({"sample": n.trajectory.sample, "fork_step": n.fork_step})
        if n.parent_sample is not None:
            d["parent"] = n.parent_sample
    for key, value in (
        ("success", n.success),
        ("role", n.role.value if n.role else None),
        ("anchor_step", n.anchor_step),
        ("advantage", n.advantage),
        ("clip_low", n.clip_low),
    ):
        if value is not None:
            d[key] = value
    return d


def _info_into(n: TreeNode, info: Mapping[str, Any]) -> None:
    n.fork_step = int(info.get("fork_step", 0))
    n.parent_sample = info.get("parent")
    n.success = info.get("success")
    n.role = LeafRole(info["role"]) if info.get("role") else None
    n.anchor_step = info.get("anchor_step")
    n.advantage = info.get("advantage")
    n.clip_low = info.get("clip_low")


def tree_to_json(tree: RolloutTree) -> dict:
    """Nested JSON (the module docstring)."""

    def node_json(n: TreeNode) -> dict:
        d: dict[str, Any] = {"id": n.id}
        if n is tree.root:
            meta = {"strategy": tree.strategy, "rollouts": tree.rollouts, "dropped": tree.dropped, **tree.meta}
            if tree.critical:
                meta["critical"] = [{"leaf": c.leaf, "sample": c.sample, "t_crit": c.t_crit, "k": c.k} for c in tree.critical]
            d.update({"task_id": tree.task_id, "gold": tree.gold, "meta": meta, "tokens": n.tokens})
        else:
            d["segments"] = [segment_to_json(s) for s in n.segments]
            d["call"] = None if n.call is None else call_to_json(n.call)
            d["observation"] = None if n.observation is None else observation_to_json(n.observation)
        info = _info_json(n)
        if info:
            d["info"] = info
        if n.trajectory is not None:
            d.update(outcome_to_json(n.trajectory))
        d["children"] = [node_json(c) for c in n.children]
        return d

    return node_json(tree.root)


def tree_from_json(d: Mapping[str, Any]) -> RolloutTree:
    """Inverse of ``tree_to_json``. Also reads hand-written trees: only ``id``, ``children`` and
    the leaves' ``reward`` are required (segments and the prompt default to empty)."""
    root = TreeNode(str(d["id"]), [Segment(Origin.PROMPT, list(d.get("tokens", [])))])
    _info_into(root, d.get("info", {}))
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
            cj, oj = c.get("call"), c.get("observation")
            node = TreeNode(
                nid,
                [segment_from_json(s) for s in c.get("segments", [])],
                None if cj is None else call_from_json(cj),
                None if oj is None else observation_from_json(oj),
                parent=parent,
            )
            info = c.get("info", {})
            _info_into(node, info)
            parent.children.append(node)
            build(c, node)
            if not node.children:
                if not isinstance(c.get("reward"), (int, float)) or isinstance(c.get("reward"), bool):
                    raise ValueError(f"leaf {nid!r} needs a numeric reward, got {c.get('reward')!r}")
                node.trajectory = _path_trajectory(node, task_id, gold, c, info)

    seen.add(root.id)
    build(d, root)
    if not root.children:
        raise ValueError(f"tree {root.id!r} has no children")
    meta = dict(d.get("meta", {}))
    critical = [CriticalStep(str(c["leaf"]), int(c["t_crit"]), int(c.get("k", 0)), c.get("sample")) for c in meta.pop("critical", [])]
    tree = RolloutTree(task_id, root, gold, strategy=str(meta.pop("strategy", "")), dropped=int(meta.pop("dropped", 0)), critical=critical)
    tree.rollouts = int(meta.pop("rollouts", len(tree.leaves())))
    tree.meta = meta
    return tree


def _path_trajectory(leaf: TreeNode, task_id: str, gold: Any, d: Mapping[str, Any], info: Mapping[str, Any]) -> Trajectory:
    """Rebuild a leaf's trajectory from its path (prompt + step segments) and its JSON outcome."""
    path = leaf.path()
    tr = Trajectory(task_id=task_id, sample=int(d.get("sample", info.get("sample", 0))), prompt_token_ids=path[0].tokens, gold=gold)
    for node in path[1:]:
        if not node.segments:
            continue
        a = len(tr.segments)
        tr.segments.extend(node.segments)
        has_tool = len(node.segments) > 1
        tr.steps.append(Step(a, node.call, node.observation, a + 1 if has_tool else None))
    _outcome_into(tr, d)
    tr.reward = float(d["reward"])
    return tr


def write_trees(path: str | Path, trees: Iterable[RolloutTree]) -> int:
    """One tree's JSON per line."""
    return _write_lines(path, trees, tree_to_json)


def read_trees(path: str | Path) -> list[RolloutTree]:
    out = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(tree_from_json(json.loads(line)))
                except (json.JSONDecodeError, KeyError, ValueError, TypeError) as e:
                    raise ValueError(f"{path}:{i}: not a rollout tree ({type(e).__name__}: {e})") from e
    return out
