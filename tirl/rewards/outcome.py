"""Outcome rewards: is the final answer right? Plus the gold self-test every task source must pass.

``correctness`` follows ALGORITHMS.md §1 ("Reward"): the protocol layer has already put the
content of the last ``\\boxed{}`` into ``Trajectory.answer``; it is scored by the task's verifier
(1/0 for math, max token-F1 for QA). A trajectory without an answer scores 0 here; penalising
format violations is the format reward's job, not this one's.

``gold_self_test`` is DESIGN.md invariant 3 ("every reward / verifier scores the gold answer as
correct"): each gold answer is written as a final answer, extracted the way a model's would
be, and scored.
"""

from __future__ import annotations

from collections.abc import Iterable

from tirl.protocol.answer import last_boxed
from tirl.rewards.verify import gold_list, score_answer
from tirl.types import Task, Trajectory


def correctness(group: list[Trajectory], task: Task) -> list[float]:
    """Score of each trajectory's extracted answer against the task's gold (RewardFn signature)."""
    return [score_answer(task, traj.answer) for traj in group]


def boxed_answer_text(answer: str) -> str:
    """A final-answer string as a model would write it: ``The answer is \\boxed{...}.``"""
    return f"The answer is \\boxed{{{answer}}}."


def gold_self_test(tasks: Iterable[Task]) -> list[str]:
    """Ids of tasks whose gold answer, boxed and extracted back, does not score 1.

    Every acceptable alternative of a list-valued gold is checked on its own.
    """
    failed = []
    for task in tasks:
        for gold in gold_list(task):
            extracted = last_boxed(boxed_answer_text(gold))
            if extracted is None or score_answer(task, extracted) < 1.0:
                failed.append(task.id)
                break
    return failed
