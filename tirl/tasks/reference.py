"""The built-in reference solvers, by task source: a synthetic task's ideal tool-using solution
as a ``Script`` that tirl executes with the real tools (``tirl.rollout.script``).

Configs name them as one expert / SFT / repair source, ``reference`` (``arith-reference``, its
older name, means the same): each task is solved by the solver of its own source.
"""

from __future__ import annotations

from collections.abc import Callable

from tirl.tasks import arith, lookup
from tirl.types import Script, Task, Trajectory

SOLVERS: dict[str, Callable[[Task], Script]] = {"arith": arith.reference_solution, "lookup": lookup.reference_solution}
CHECKS: dict[str, Callable[[Task, Trajectory], str | None]] = {"lookup": lookup.check_trajectory}
"""Per source, a check of an executed reference trajectory against real tool results (a lookup
search that missed its article would otherwise teach stating facts the context does not hold)."""
SPECS: tuple[str, ...] = ("reference", "arith-reference")
"""The names a config gives the reference solvers (as ``sft.source``, ``strategy.e3.expert``,
``repair.repairer``)."""


def is_reference(spec: str | None) -> bool:
    return spec in SPECS


def has_solver(task: Task) -> bool:
    return task.meta.get("source") in SOLVERS


def reference_solution(task: Task) -> Script:
    source = task.meta.get("source")
    if source not in SOLVERS:
        raise ValueError(
            f"task {task.id!r} (source {source!r}) has no reference solver; the reference solves {', '.join(SOLVERS)} tasks "
            "(use a JSONL of trajectories or a model instead)"
        )
    return SOLVERS[source](task)


def check(task: Task, traj: Trajectory) -> str | None:
    """None when the executed reference trajectory is sound, else what is wrong with it."""
    fn = CHECKS.get(task.meta.get("source"))
    return fn(task, traj) if fn is not None else None
