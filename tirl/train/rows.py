"""Trajectories → TrainRows: the one place that lays per-token training arrays over the ids.

The ids are the trajectory's own (prompt + segments, never re-tokenised text); the loss mask
comes from ``tirl.rollout.masks.loss_mask`` (the one function that decides what is trained);
each trajectory's scalar advantage is broadcast over its tokens (zero where masked).
"""

from __future__ import annotations

from typing import Sequence

import torch

from tirl.rollout.masks import loss_mask
from tirl.types import Origin, TrainRow, Trajectory


def trajectory_row(traj: Trajectory, advantage: float, clip_low: float, clip_high: float, mask_truncated: bool = False) -> TrainRow:
    ids = traj.token_ids
    mask = [float(m) for m in loss_mask(traj, mask_truncated=mask_truncated)]
    old = [0.0] * len(traj.prompt_token_ids)
    off = [0.0] * len(traj.prompt_token_ids)
    for seg in traj.segments:
        old.extend(seg.logprobs if seg.logprobs is not None and len(seg.logprobs) == len(seg) else [0.0] * len(seg))
        off.extend([1.0 if seg.origin is Origin.EXPERT else 0.0] * len(seg))
    return TrainRow(
        input_ids=list(ids),
        loss_mask=mask,
        advantage=[advantage * m for m in mask],
        old_logprob=old,
        clip_low=[clip_low] * len(ids),
        clip_high=[clip_high] * len(ids),
        offpolicy=off,
        detach=[0.0] * len(ids),
        task_id=traj.task_id,
        sample=traj.sample,
    )


def build_rows(trajs: Sequence[Trajectory], advantage_B: torch.Tensor, clip_low: float, clip_high: float, mask_truncated: bool = False) -> list[TrainRow]:
    if len(trajs) != len(advantage_B):
        raise ValueError(f"{len(trajs)} trajectories but {len(advantage_B)} advantages")
    return [trajectory_row(t, float(a), clip_low, clip_high, mask_truncated) for t, a in zip(trajs, advantage_B)]


def collate(rows: Sequence[TrainRow], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad rows into ``_BT`` tensors; ``attn_BT`` is 1 on real tokens."""
    T = max(len(r) for r in rows)
    B = len(rows)

    def pad(get, value=0.0, dtype=torch.float32):
        out = torch.full((B, T), value, dtype=dtype)
        for b, r in enumerate(rows):
            v = get(r)
            out[b, : len(v)] = torch.tensor(v, dtype=dtype)
        return out

    return {
        "ids_BT": pad(lambda r: r.input_ids, pad_id, torch.long),
        "attn_BT": pad(lambda r: [1] * len(r), 0, torch.long),
        "mask_BT": pad(lambda r: r.loss_mask),
        "adv_BT": pad(lambda r: r.advantage),
        "old_logp_BT": pad(lambda r: r.old_logprob),
        "clip_low_BT": pad(lambda r: r.clip_low),
        "clip_high_BT": pad(lambda r: r.clip_high),
        "offpolicy_BT": pad(lambda r: r.offpolicy),
        "detach_BT": pad(lambda r: r.detach),
    }
