"""Pairwise preference loss for reward models (Bradley & Terry 1952; as used for RLHF reward
models by Ouyang et al. 2022, eq. 1, and by AutoTraj's LLaMA-Factory ``stage: rm``):

    loss = mean_B  -log sigmoid(s_chosen - s_rejected)

computed as ``softplus(s_rejected - s_chosen)``, the numerically stable form. Pairwise accuracy
is the share of pairs with ``s_chosen > s_rejected`` (ties count as wrong).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen_B: torch.Tensor, rejected_B: torch.Tensor) -> torch.Tensor:
    if chosen_B.shape != rejected_B.shape:
        raise ValueError(f"chosen and rejected scores differ in shape: {tuple(chosen_B.shape)} vs {tuple(rejected_B.shape)}")
    return F.softplus(rejected_B - chosen_B).mean()


def pairwise_accuracy(chosen_B: torch.Tensor, rejected_B: torch.Tensor) -> float:
    if chosen_B.numel() == 0:
        return 0.0
    return float((chosen_B > rejected_B).float().mean())
