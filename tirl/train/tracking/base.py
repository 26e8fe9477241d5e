"""What a tracking backend receives from a run (``log.backends``): the step scalars that also go
to ``metrics.jsonl``, each evaluation's table and a table of sampled trajectories per step.
``tirl.train.run_log.RunLog`` fans every call out to the run's backends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from typing import ClassVar

from tirl.errors import UserError
from tirl.eval.runner import EvalReport
from tirl.types import Trajectory


class TrackingError(UserError, RuntimeError):
    """A tracking backend that cannot start (package missing, not logged in, bad URI)."""


@dataclass
class TrajectoryRow:
    """One sampled trajectory as a row of the per-step table (the text cut to ``TEXT_CHARS``)."""

    step: int
    task_id: str
    sample: int
    reward: float
    correct: float | None
    stop_reason: str
    tool_calls: int
    tool_errors: int
    answer: str
    gold: str
    text: str


TABLE_COLUMNS = [f.name for f in fields(TrajectoryRow)]
TEXT_CHARS = 4000  # a table cell, not an archive: the whole trajectory is in trajectories/


def trajectory_rows(step: int, trajs: Iterable[Trajectory], limit: int) -> list[TrajectoryRow]:
    """The first ``limit`` trajectories of a step as table rows."""
    rows = []
    for t in trajs:
        if len(rows) >= limit:
            break
        calls = [s for s in t.steps if s.call is not None]
        rows.append(
            TrajectoryRow(
                step=step,
                task_id=t.task_id,
                sample=t.sample,
                reward=float(t.reward),
                correct=t.rewards.get("correct"),
                stop_reason=t.stop_reason.value if t.stop_reason else "",
                tool_calls=len(calls),
                tool_errors=sum(1 for s in calls if s.observation is None or not s.observation.ok),
                answer=t.answer or "",
                gold=t.gold if isinstance(t.gold, str) else " | ".join(t.gold or []),
                text=t.text[:TEXT_CHARS],
            )
        )
    return rows


def table_data(rows: list[TrajectoryRow]) -> list[list]:
    return [list(astuple(r)) for r in rows]


class Tracker(ABC):
    """One backend. Constructors log the run's config; ``run_id`` is what a resumed run passes
    back to continue the same tracked run (None for a backend without one)."""

    name: ClassVar[str]
    run_id: str | None = None

    @abstractmethod
    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Finite numeric metrics of one step (the keys of metrics.jsonl)."""

    def evaluation(self, step: int, tag: str, report: EvalReport) -> None:
        """An evaluation (``tag``: before, after_sft, step10, after, ..._t1) as a table."""

    def trajectories(self, step: int, rows: list[TrajectoryRow]) -> None:
        """The step's sampled trajectories as a table."""

    def close(self, ok: bool = True) -> None:
        """End the tracked run (``ok`` False: it failed or was interrupted)."""
