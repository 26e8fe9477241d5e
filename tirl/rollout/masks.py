"""The one function that decides which tokens are trained (DESIGN.md invariant 1).

Tool-output tokens (the ``<result>`` wrapper included) stay in the context and out of the
loss; prompt tokens are never trained; EXPERT tokens are off-policy and never take the
on-policy loss (recipes that learn from them use their own term). The model's own stop tag
is part of its POLICY segment, so it stays trainable (ALGORITHMS.md §1, "Masks").
"""

from __future__ import annotations

from tirl.types import Origin, StopReason, Trajectory

RL_ORIGINS = frozenset({Origin.POLICY})
SFT_ORIGINS = frozenset({Origin.POLICY, Origin.EXPERT})
"""Supervised fine-tuning imitates the model's and the expert's own text, never tool output."""


def loss_mask(traj: Trajectory, mask_truncated: bool = False, origins: frozenset[Origin] = RL_ORIGINS) -> list[int]:
    """1 for each trainable token of ``traj.token_ids`` (aligned with it), else 0.

    ``origins`` are the segment origins that are trained (POLICY for RL, POLICY and EXPERT for
    SFT); TOOL and PROMPT tokens are never trained whatever is passed.
    ``mask_truncated`` zeroes a trajectory cut by the token budget (DAPO-style overlong masking).
    A trajectory stopped by an infrastructure error or by the void-turn filter is never trained.
    """
    if traj.stop_reason in (StopReason.ERROR, StopReason.VOID_TURN) or (mask_truncated and traj.stop_reason is StopReason.LENGTH):
        return [0] * len(traj.token_ids)
    trained = origins - {Origin.TOOL, Origin.PROMPT}
    mask = [0] * len(traj.prompt_token_ids)
    for seg in traj.segments:
        mask.extend([1 if seg.origin in trained else 0] * len(seg.token_ids))
    return mask
