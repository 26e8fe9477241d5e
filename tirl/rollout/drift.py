"""Re-tokenisation drift: what training on re-rendered text would change.

tirl trains on the ids the engine sampled (DESIGN.md invariant 2). Decoding a trajectory and
encoding the text again is *not* the identity: BPE merges across segment boundaries (a tool
observation tokenised on its own, a stop tag split differently) give other ids. This module
measures that drift so tests and reports can show what re-rendering would have broken.
"""

from __future__ import annotations

from dataclasses import dataclass

from tirl.types import Trajectory


@dataclass
class DriftReport:
    n_tokens: int
    n_retokenized: int
    first_mismatch: int | None
    """Index into the completion where re-encoded ids first differ (None: identical)."""

    @property
    def drifted(self) -> bool:
        return self.first_mismatch is not None


def retokenization_drift(traj: Trajectory, tokenizer) -> DriftReport:
    ids = traj.completion_ids
    text = tokenizer.decode(ids, skip_special_tokens=False)
    again = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    first = next((i for i, (a, b) in enumerate(zip(ids, again)) if a != b), None)
    if first is None and len(ids) != len(again):
        first = min(len(ids), len(again))
    return DriftReport(n_tokens=len(ids), n_retokenized=len(again), first_mismatch=first)
