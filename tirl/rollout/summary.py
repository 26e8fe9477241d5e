"""Summary statistics of a set of rollouts (the table ``tirl rollout`` prints)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tirl.rollout.drift import retokenization_drift
from tirl.types import StopReason, Trajectory


@dataclass
class RolloutSummary:
    n_trajectories: int
    n_tasks: int
    accuracy: float
    """Share of trajectories whose answer is correct (reward component ``correct``)."""
    format_ok: float
    tool_use_rate: float
    """Share of trajectories that made at least one tool call."""
    tool_calls_per_traj: float
    tool_success_rate: float
    """Share of executed tool calls that returned without error or timeout."""
    mean_policy_tokens: float
    mean_reward: float
    tokens_per_s: float
    wall_s: float
    stop_reasons: dict[str, int] = field(default_factory=dict)
    infra_errors: int = 0
    retokenization_drift: float | None = None
    """Share of trajectories whose decoded text re-encodes to other ids (what training on
    re-rendered text would corrupt; tirl trains on the sampled ids). None when not measured."""

    def rows(self) -> list[tuple[str, str]]:
        stops = ", ".join(f"{k} {v}" for k, v in sorted(self.stop_reasons.items(), key=lambda kv: -kv[1]))
        return [
            ("trajectories", f"{self.n_trajectories} ({self.n_tasks} tasks)"),
            ("accuracy", f"{self.accuracy:.3f}"),
            ("format ok", f"{self.format_ok:.3f}"),
            ("mean reward", f"{self.mean_reward:.3f}"),
            ("tool-use rate", f"{self.tool_use_rate:.3f}"),
            ("tool calls / trajectory", f"{self.tool_calls_per_traj:.2f}"),
            ("tool success rate", f"{self.tool_success_rate:.3f}" if self.tool_calls_per_traj else "n/a (no calls)"),
            ("mean policy tokens", f"{self.mean_policy_tokens:.1f}"),
            ("tokens/s (policy)", f"{self.tokens_per_s:.1f}"),
            ("wall time", f"{self.wall_s:.1f} s"),
            ("stop reasons", stops),
            ("infra errors (dropped)", str(self.infra_errors)),
        ] + (
            [("re-tokenisation drift", f"{self.retokenization_drift:.3f} of trajectories (not used for training)")]
            if self.retokenization_drift is not None
            else []
        )


def summarize(groups: list[list[Trajectory]], wall_s: float, tokenizer=None) -> RolloutSummary:
    trajs = [t for g in groups for t in g]
    scored = [t for t in trajs if t.stop_reason is not StopReason.ERROR]
    n = max(len(scored), 1)
    calls = [s for t in scored for s in t.steps if s.call is not None]
    executed = [s for s in calls if s.observation is not None]
    policy_tokens = sum(t.n_policy_tokens for t in trajs)
    return RolloutSummary(
        n_trajectories=len(trajs),
        n_tasks=len(groups),
        accuracy=sum(t.rewards.get("correct", 0.0) for t in scored) / n,
        format_ok=sum(t.rewards.get("format_ok", 0.0) for t in scored) / n,
        tool_use_rate=sum(1 for t in scored if t.n_tool_calls > 0) / n,
        tool_calls_per_traj=len(calls) / n,
        tool_success_rate=sum(1 for s in executed if s.observation.ok) / max(len(executed), 1),
        mean_policy_tokens=policy_tokens / max(len(trajs), 1),
        mean_reward=sum(t.reward for t in scored) / n,
        tokens_per_s=policy_tokens / wall_s if wall_s > 0 else 0.0,
        wall_s=wall_s,
        stop_reasons=dict(Counter(t.stop_reason.value if t.stop_reason else "none" for t in trajs)),
        infra_errors=len(trajs) - len(scored),
        retokenization_drift=None if tokenizer is None or not trajs else sum(retokenization_drift(t, tokenizer).drifted for t in trajs) / len(trajs),
    )
