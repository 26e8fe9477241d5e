"""DAPO soft overlong punishment (Yu et al. 2025, §3.4, eq. 13), as a group-aware reward:

    0                             if L <= Lmax - Lbuf
    ((Lmax - Lbuf) - L) / Lbuf    if Lmax - Lbuf < L <= Lmax
    -1                            if L > Lmax

L counts the trajectory's own (policy) tokens: tool output is not the model's length and must
not push a response into the penalty (an OpenRLHF bug measured the span including tool tokens).
"""

from __future__ import annotations

from tirl.rewards.base import RewardFn
from tirl.types import Task, Trajectory


def overlong_penalty(length: int, max_len: int, buffer: int) -> float:
    if buffer <= 0 or buffer > max_len:
        raise ValueError(f"overlong buffer must be in (0, max_len]; got buffer={buffer}, max_len={max_len}")
    start = max_len - buffer
    if length <= start:
        return 0.0
    if length <= max_len:
        return (start - length) / buffer
    return -1.0


def soft_overlong(max_len: int, buffer: int) -> RewardFn:
    overlong_penalty(0, max_len, buffer)  # validate now, not at the first rollout

    def fn(group: list[Trajectory], task: Task) -> list[float]:
        return [overlong_penalty(t.n_policy_tokens, max_len, buffer) for t in group]

    return fn
