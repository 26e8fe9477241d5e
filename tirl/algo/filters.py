"""Group filters.

DAPO dynamic sampling (Yu et al. 2025, §3.2, eq. 11): a group whose rewards are all equal has
zero advantage everywhere and contributes no gradient, so it is dropped and sampling continues
until the batch is full (the trainer owns the resampling loop and its cap).
"""

from __future__ import annotations

import torch


def nonzero_variance_groups(reward_B: torch.Tensor, group_B: torch.Tensor, tol: float = 1e-8) -> torch.Tensor:
    """Bool per row: True when its group's rewards are not all equal."""
    _, inv_B = torch.unique(group_B, return_inverse=True)
    n = int(inv_B.max()) + 1 if len(inv_B) else 0
    hi_G = torch.full((n,), float("-inf"), dtype=torch.float64).scatter_reduce(0, inv_B, reward_B.double(), "amax")
    lo_G = torch.full((n,), float("inf"), dtype=torch.float64).scatter_reduce(0, inv_B, reward_B.double(), "amin")
    return ((hi_G - lo_G) > tol)[inv_B]
