"""Trajectories on disk: one JSON object per line (the schema is documented in the README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from tirl.errors import UserError
from tirl.types import Observation, Origin, Segment, Step, StopReason, ToolCall, Trajectory


def trajectory_to_json(tr: Trajectory) -> dict:
    calls = []
    for s in tr.steps:
        if s.call is None:
            continue
        o = s.observation
        calls.append({
            "name": s.call.name, "arguments": s.call.arguments, "raw": s.call.raw, "parse_error": s.call.error,
            "output": o.output if o else None, "ok": o.ok if o else False, "error": o.error if o else None,
            "timed_out": o.timed_out if o else False, "latency_ms": round(o.latency_ms, 3) if o else 0.0,
            "infra_error": o.infra_error if o else False,
            "action_segment": s.action_segment, "tool_segment": s.tool_segment,
        })
    return {
        "task_id": tr.task_id,
        "sample": tr.sample,
        "prompt_token_ids": tr.prompt_token_ids,
        "segments": [
            {"origin": seg.origin.value, "token_ids": seg.token_ids, "logprobs": seg.logprobs, "entropy": seg.entropy}
            for seg in tr.segments
        ],
        "steps": [{"action_segment": s.action_segment, "tool_segment": s.tool_segment} for s in tr.steps],
        "text": tr.text,
        "tool_calls": calls,
        "answer": tr.answer,
        "gold": tr.gold,
        "reward": tr.reward,
        "rewards": tr.rewards,
        "stop_reason": tr.stop_reason.value if tr.stop_reason else None,
        "metrics": tr.metrics,
        **({"error": tr.error} if tr.error else {}),
    }


def trajectory_from_json(d: dict) -> Trajectory:
    segments = [Segment(Origin(s["origin"]), list(s["token_ids"]), s.get("logprobs"), s.get("entropy")) for s in d["segments"]]
    by_action = {c["action_segment"]: c for c in d.get("tool_calls", [])}
    steps = []
    for s in d.get("steps", []):
        c = by_action.get(s["action_segment"])
        call = obs = None
        if c is not None:
            call = ToolCall(c["name"], c["arguments"], c.get("raw", ""), c.get("parse_error"))
            obs = Observation(c["ok"], c["output"] or "", c.get("error"), c.get("timed_out", False), c.get("latency_ms", 0.0), c.get("infra_error", False))
        steps.append(Step(s["action_segment"], call, obs, s.get("tool_segment")))
    return Trajectory(
        task_id=d["task_id"], sample=d.get("sample", 0), prompt_token_ids=list(d["prompt_token_ids"]), segments=segments,
        steps=steps, answer=d.get("answer"), gold=d.get("gold"),
        stop_reason=StopReason(d["stop_reason"]) if d.get("stop_reason") else None,
        reward=d.get("reward", 0.0), rewards=d.get("rewards", {}), metrics=d.get("metrics", {}), text=d.get("text", ""),
        error=d.get("error"),
    )


def write_jsonl(path: str | Path, trajs: Iterable[Trajectory]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w") as f:
        for tr in trajs:
            f.write(json.dumps(trajectory_to_json(tr)) + "\n")
            n += 1
    return n


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
