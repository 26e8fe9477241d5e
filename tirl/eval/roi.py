"""Return on investment of a training recipe (ALGORITHMS.md §5; tirl's definition — E3-TIR,
arXiv 2604.09455, reports ROI as "a comprehensive metric integrating performance, data cost and
training efficiency" without a formula that could be read):

    ROI  = (score - base_score) / cost
    cost = expert_samples / expert_samples_ref + train_tokens / train_tokens_ref

``score`` is held-out accuracy after training, ``base_score`` the start model's. ``expert_samples``
counts the expert trajectories the run consumed (SFT examples, E3-TIR's expert calls);
``train_tokens`` every token that received a gradient (SFT tokens, on-policy tokens, off-policy
expert tokens). The references are the SFT-then-RL baseline's own counts, so its cost is 2 and
``relative_roi`` reports every run as a multiple of that baseline's ROI (the baseline = 1.00x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RunCost:
    """What one run achieved and consumed."""

    score: float
    expert_samples: float
    train_tokens: float


def roi(score: float, base_score: float, expert_samples: float, train_tokens: float, expert_samples_ref: float, train_tokens_ref: float) -> float:
    """``(score - base_score) / (expert_samples / expert_samples_ref + train_tokens / train_tokens_ref)``."""
    if expert_samples_ref <= 0 or train_tokens_ref <= 0:
        raise ValueError(
            f"ROI references must be > 0 (got expert_samples_ref={expert_samples_ref}, train_tokens_ref={train_tokens_ref}); the reference run must use expert data and train"
        )
    if expert_samples < 0 or train_tokens < 0:
        raise ValueError(f"costs must be >= 0, got expert_samples={expert_samples}, train_tokens={train_tokens}")
    cost = expert_samples / expert_samples_ref + train_tokens / train_tokens_ref
    if cost == 0:
        raise ValueError("a run that used no expert data and trained no token has no ROI")
    return (score - base_score) / cost


def relative_roi(run: RunCost, reference: RunCost, base_score: float) -> float:
    """``run``'s ROI divided by ``reference``'s, both with ``reference``'s counts as the cost
    units. NaN when the reference did not improve on the base (its ROI is <= 0, so no multiple
    of it means anything)."""
    ref = roi(reference.score, base_score, reference.expert_samples, reference.train_tokens, reference.expert_samples, reference.train_tokens)
    if ref <= 0:
        return math.nan
    return roi(run.score, base_score, run.expert_samples, run.train_tokens, reference.expert_samples, reference.train_tokens) / ref
