"""Advantage estimators: group-relative baselines over each task's samples.

Every estimator has the same signature (a plain dict maps names to them):

    fn(reward_B, group_B, cfg) -> advantage_B

``reward_B`` is one scalar reward per trajectory, ``group_B`` the integer id of its task's group.
The advantage is per trajectory; the row builder broadcasts it over the trajectory's policy
tokens. Tree estimators (ELPO, E3-TIR) write per-step advantages through the tree's flatten
instead and never pass through here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AdvantageConfig:
    eps: float = 1e-6
    """Added to the group std (GRPO, Shao et al. 2024, eq. 3 as implemented in verl/TRL)."""


AdvantageFn = Callable[[torch.Tensor, torch.Tensor, AdvantageConfig], torch.Tensor]


def _group_stats(reward_B: torch.Tensor, group_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row group mean, population std (ddof 0, ALGORITHMS.md §1) and group size."""
    _, inv_B, count_G = torch.unique(group_B, return_inverse=True, return_counts=True)
    r = reward_B.double()
    sum_G = torch.zeros(len(count_G), dtype=torch.float64).index_add_(0, inv_B, r)
    mean_G = sum_G / count_G
    sq_G = torch.zeros(len(count_G), dtype=torch.float64).index_add_(0, inv_B, (r - mean_G[inv_B]) ** 2)
    std_G = (sq_G / count_G).sqrt()
    return mean_G[inv_B], std_G[inv_B], count_G[inv_B].double()


def grpo(reward_B: torch.Tensor, group_B: torch.Tensor, cfg: AdvantageConfig) -> torch.Tensor:
    """A_i = (R_i - mean R) / (std R + eps) within the group (population std)."""
    mean_B, std_B, _ = _group_stats(reward_B, group_B)
    return ((reward_B.double() - mean_B) / (std_B + cfg.eps)).float()


def dr_grpo(reward_B: torch.Tensor, group_B: torch.Tensor, cfg: AdvantageConfig) -> torch.Tensor:
    """Dr. GRPO: A_i = R_i - mean R, never std-normalised (Liu et al. 2025)."""
    mean_B, _, _ = _group_stats(reward_B, group_B)
    return (reward_B.double() - mean_B).float()


def rloo(reward_B: torch.Tensor, group_B: torch.Tensor, cfg: AdvantageConfig) -> torch.Tensor:
    """REINFORCE leave-one-out: A_i = R_i - mean_{j != i} R_j = G/(G-1) (R_i - mean R)
    (Ahmadian et al. 2024). A group of one has no baseline and gets 0."""
    mean_B, _, n_B = _group_stats(reward_B, group_B)
    scale_B = torch.where(n_B > 1, n_B / (n_B - 1).clamp(min=1), torch.zeros_like(n_B))
    return (scale_B * (reward_B.double() - mean_B)).float()


ADVANTAGES: dict[str, AdvantageFn] = {"grpo": grpo, "dr_grpo": dr_grpo, "rloo": rloo}
