"""A trajectory as the viewer shows it: its segments decoded token by token, what was trained
(``tirl.rollout.masks.loss_mask``, the function training used), the advantage and clip bound
each step was trained with (read off the saved rollout tree), and its tool calls."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tirl.report.model import CallView, SegmentView, TrajectoryView
from tirl.report.select import correct, tool_error, truncated
from tirl.report.tokens import TokenText
from tirl.rollout.masks import loss_mask
from tirl.types import RolloutTree, ToolCall, Trajectory, TreeNode

OUTPUT_CHARS = 4000


@dataclass
class StepCredit:
    """What the saved tree says a trajectory's steps were trained with."""

    leaf_advantage: float | None = None
    advantage: list[float | None] = field(default_factory=list)  # per step
    clip_low: list[float | None] = field(default_factory=list)
    widened: list[bool] = field(default_factory=list)
    critical: list[bool] = field(default_factory=list)


def critical_nodes(tree: RolloutTree) -> set[str]:
    """Ids of the nodes where an ELPO search put t_crit (the first irrecoverable step)."""
    out = set()
    for c in tree.critical:
        try:
            path = tree.node(c.leaf).path()
        except KeyError:
            continue
        if 0 < c.t_crit < len(path):
            out.add(path[c.t_crit].id)
    return out


def widened(node: TreeNode, clip_low: float | None) -> bool:
    """ELPO's error-localised clipping widened this node's lower bound beyond algo.clip_low."""
    return node.clip_low is not None and clip_low is not None and node.clip_low > clip_low + 1e-9


def step_credit(leaf: TreeNode | None, clip_low: float | None, critical: set[str]) -> StepCredit:
    if leaf is None:
        return StepCredit()
    path = leaf.path()[1:]  # one node per step
    return StepCredit(
        leaf_advantage=leaf.advantage,
        advantage=[n.advantage if n.advantage is not None else leaf.advantage for n in path],
        clip_low=[n.clip_low for n in path],
        widened=[widened(n, clip_low) for n in path],
        critical=[n.id in critical for n in path],
    )


def _x100(values: list[float] | None, n: int) -> list[int] | None:
    if values is None or len(values) != n:
        return None
    return [round(v * 100) for v in values]


def call_code(call: ToolCall) -> str:
    """What the model asked to run: the single string argument (the code, the expression), else
    the arguments as JSON; a malformed call's raw text."""
    if call.error is not None and call.raw:
        return call.raw
    strings = [v for v in call.arguments.values() if isinstance(v, str)]
    if len(call.arguments) == 1 and strings:
        return strings[0]
    return json.dumps(call.arguments, ensure_ascii=False) if call.arguments else call.raw


def trajectory_view(
    t: Trajectory,
    key: str,
    source: str,
    step: int,
    tok: TokenText | None,
    credit: StepCredit | None = None,
    mask_truncated: bool = False,
) -> TrajectoryView:
    """``credit`` None: an evaluation trajectory (nothing trained)."""
    seg_step: dict[int, int] = {}
    for k, s in enumerate(t.steps):
        seg_step[s.action_segment] = k
        if s.tool_segment is not None:
            seg_step[s.tool_segment] = k
    mask = loss_mask(t, mask_truncated=mask_truncated) if credit is not None else None
    off = len(t.prompt_token_ids)
    segments = []
    for i, seg in enumerate(t.segments):
        n = len(seg.token_ids)
        k = seg_step.get(i)
        trained = any(mask[off : off + n]) if mask is not None else None
        off += n
        v = SegmentView(
            origin=seg.origin.value,
            tokens=tok.pieces(seg.token_ids) if tok is not None else [],
            logprob=_x100(seg.logprobs, n),
            entropy=_x100(seg.entropy, n),
            trained=trained,
            step=k,
        )
        if credit is not None and k is not None and k < len(credit.advantage):
            own = seg.origin.value in ("policy", "expert")  # a tool segment is never trained, whatever its step's value
            v.advantage = credit.advantage[k] if own else None
            v.clip_low = credit.clip_low[k] if own else None
            v.widened = credit.widened[k] and own
            v.critical = credit.critical[k] and own
        segments.append(v)
    calls = []
    for k, s in enumerate(t.steps):
        if s.call is None:
            continue
        o = s.observation
        calls.append(
            CallView(
                step=k,
                name=s.call.name,
                code=call_code(s.call),
                output=(o.output if o is not None else "")[:OUTPUT_CHARS],
                ok=bool(o is not None and o.ok and not o.timed_out),
                error=o.error if o is not None else None,
                parse_error=s.call.error,
                timed_out=bool(o is not None and o.timed_out),
                infra_error=bool(o is not None and o.infra_error),
                latency_ms=round(o.latency_ms, 1) if o is not None else 0.0,
            )
        )
    gold = t.gold if isinstance(t.gold, str) else " | ".join(t.gold or [])
    return TrajectoryView(
        key=key,
        source=source,
        step=step,
        task_id=t.task_id,
        sample=t.sample,
        segments=segments,
        calls=calls,
        answer=t.answer,
        gold=gold,
        reward=round(float(t.reward), 4),
        rewards={k: round(float(v), 4) for k, v in t.rewards.items()},
        stop_reason=t.stop_reason.value if t.stop_reason else "",
        correct=correct(t) if "correct" in t.rewards else None,
        tool_error=tool_error(t),
        truncated=truncated(t),
        advantage=credit.leaf_advantage if credit is not None else None,
        text=t.text,
        error=t.error,
    )
