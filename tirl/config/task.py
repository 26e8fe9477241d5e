"""The ``task`` section: which tasks train and evaluate the policy (``tirl.tasks``)."""

from __future__ import annotations

from pydantic import Field

from tirl.config.base import Section


class TaskConfig(Section):
    name: str = "arith"
    """arith, lookup, champ, or a .jsonl/.parquet file."""
    difficulty: int | list[int] | None = None
    """arith levels (1-5) or lookup levels (1-4) to draw from; None: all levels."""
    n_train: int = Field(2048, ge=1)
    """Training tasks (for arith: generated; for files: the first n)."""
    n_eval: int = Field(64, ge=1)
    """Held-out tasks for evaluation."""
    eval_split: str = "test"
    seed: int = 0
