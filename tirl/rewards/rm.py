"""AutoTraj's reward-model term (Gong et al. 2026, arXiv 2601.23032; ALGORITHMS.md §7):

    format violation            -> format_violation (-1)
    otherwise S = outcome score; if S > 0:  R = max(S, S + w * rm)

The released reward (``re_search.py::compute_score``) adds ``0.2·rm`` only for F1 > 0 and then
takes ``max(F1, ·)``: the reward model can raise the reward of a (partly) correct trajectory,
never lower it, and never rescues a wrong one. The trajectory scorer is anything with
``score(tasks, completions) -> list[float]`` (``tirl.rm.model.RewardModelScorer``, which renders
exactly the chat text it was trained on); only the trajectories with S > 0 are sent to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol as TypingProtocol

from tirl.protocol.base import Protocol
from tirl.rewards.base import RewardFn
from tirl.rewards.verify import score_answer
from tirl.types import Task, Trajectory


class TrajectoryScorer(TypingProtocol):
    def score(self, tasks: Sequence[Task], completions: Sequence[str]) -> list[float]: ...


def rm_combine(s: float, rm: float, weight: float) -> float:
    """``max(S, S + w·rm)`` for S > 0, else S (ALGORITHMS.md §7)."""
    return max(s, s + weight * rm) if s > 0 else s


def rm_outcome(protocol: Protocol, scorer: TrajectoryScorer, weight: float = 0.2, format_violation: float = -1.0) -> RewardFn:
    def fn(group: list[Trajectory], task: Task) -> list[float]:
        out = [format_violation if protocol.format_error(t.text) else score_answer(task, t.answer) for t in group]
        scored = [i for i, s in enumerate(out) if s > 0]
        if scored:
            rms = scorer.score([task] * len(scored), [group[i].text for i in scored])
            for i, rm in zip(scored, rms):
                out[i] = rm_combine(out[i], float(rm), weight)
        return out

    return fn
