"""Score one extracted answer against a task's gold: ``score_answer(task, answer) -> float``.

Dispatches on ``task.verifier`` (``Task.meta["verifier"]``, default "math") through the plain
dict ``VERIFIERS``; every verifier takes ``(answer, golds)`` and returns a score in [0, 1]:

- "math": 1.0 when ``verify_math`` accepts the answer against any gold, else 0.0;
- "qa": max SQuAD token-F1 over the golds (ALGORITHMS.md §1);
- "exact": 1.0 when the answer equals a gold after stripping surrounding whitespace.

``Task.answer`` may be a list: for QA the acceptable answers, for math the acceptable
equivalent forms (a list means "any of these"). A missing answer (None) scores 0.0.
"""

from __future__ import annotations

from collections.abc import Callable

from tirl.rewards.math import default_verifier
from tirl.rewards.qa import max_f1
from tirl.types import Task

Verifier = Callable[[str, list[str]], float]


def _math(answer: str, golds: list[str]) -> float:
    return 1.0 if default_verifier().verify_any(answer, golds) else 0.0


def _qa(answer: str, golds: list[str]) -> float:
    return max_f1(answer, golds)


def _exact(answer: str, golds: list[str]) -> float:
    a = answer.strip()
    return 1.0 if any(a == g.strip() for g in golds) else 0.0


VERIFIERS: dict[str, Verifier] = {"math": _math, "qa": _qa, "exact": _exact}


def gold_list(task: Task) -> list[str]:
    """The task's acceptable answers as a list of strings."""
    answer = task.answer
    if isinstance(answer, (list, tuple)):
        return [str(a) for a in answer]
    return [str(answer)]


def score_answer(task: Task, answer: str | None) -> float:
    """Score of ``answer`` (already extracted, e.g. the last ``\\boxed{}``) for ``task``."""
    kind = task.verifier
    try:
        verifier = VERIFIERS[kind]
    except KeyError:
        raise ValueError(f"task {task.id!r} asks for verifier {kind!r}; known verifiers: {', '.join(sorted(VERIFIERS))}") from None
    if answer is None:
        return 0.0
    return float(verifier(str(answer), gold_list(task)))
