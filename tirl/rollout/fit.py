"""Tasks against the model's context window (the tokens it can attend to: prompt plus
everything generated and observed after it).

A task whose rendered prompt already fills the context cannot be rolled out; ``fit_tasks``
sets such tasks aside up front with their ids, so one over-long task never aborts a run. The
agent loop stops a trajectory whose conversation reaches the context with ``stop_reason=length``
(a tool observation can push it there); this module is the check before the loop starts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tirl.errors import UserError
from tirl.protocol.base import Protocol
from tirl.types import Task

_SHOWN_IDS = 5


class NoTaskFits(UserError):
    """Not one task's prompt fits the model's context."""


@dataclass
class Fit:
    """The tasks that fit and the ids of those that do not (with their prompt lengths)."""

    kept: list[Task]
    skipped: dict[str, int] = field(default_factory=dict)
    max_context: int | None = None

    def note(self, what: str = "tasks") -> str | None:
        """One line for the user, or None when nothing was skipped."""
        if not self.skipped:
            return None
        shown = ", ".join(f"{i} ({n} tokens)" for i, n in list(self.skipped.items())[:_SHOWN_IDS])
        more = f" and {len(self.skipped) - _SHOWN_IDS} more" if len(self.skipped) > _SHOWN_IDS else ""
        return (
            f"skipped {len(self.skipped)} of {len(self.kept) + len(self.skipped)} {what} whose prompt does not fit the "
            f"model's context of {self.max_context} tokens: {shown}{more}"
        )

    def require(self, what: str = "tasks") -> list[Task]:
        """The kept tasks; ``NoTaskFits`` when none is left."""
        if not self.kept and self.skipped:
            raise NoTaskFits(f"{self.note(what)}; none is left")
        return self.kept


def fit_tasks(tasks: Sequence[Task], protocol: Protocol, tokenizer, max_context: int | None) -> Fit:
    """Keep the tasks whose prompt leaves at least one token of room in ``max_context``
    (None: the engine does not know its context, as for a remote server; everything is kept)."""
    if max_context is None:
        return Fit(list(tasks))
    kept, skipped = [], {}
    for t in tasks:
        n = len(protocol.prompt_ids(tokenizer, t))
        if n < max_context:
            kept.append(t)
        else:
            skipped[t.id] = n
    return Fit(kept, skipped, max_context)
