"""Format and outcome rewards (ALGORITHMS.md §1, "Reward (default outcome)").

``outcome``: a format violation scores ``violation`` (default −1), otherwise the verifier's
score (wrong 0, correct 1; QA: token F1). ``format_ok`` (1/0) is logged as a zero-weight metric.
The format rules belong to the protocol (``Protocol.format_error``); these rewards only apply them.
"""

from __future__ import annotations

from tirl.protocol.base import Protocol
from tirl.rewards.base import RewardFn
from tirl.rewards.verify import score_answer
from tirl.types import Task, Trajectory


def format_ok(protocol: Protocol) -> RewardFn:
    def fn(group: list[Trajectory], task: Task) -> list[float]:
        return [0.0 if protocol.format_error(t.text) else 1.0 for t in group]

    return fn


def outcome(protocol: Protocol, violation: float = -1.0) -> RewardFn:
    def fn(group: list[Trajectory], task: Task) -> list[float]:
        return [violation if protocol.format_error(t.text) else score_answer(task, t.answer) for t in group]

    return fn
