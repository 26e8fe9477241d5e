"""KL estimators between the policy and a frozen reference, per token (Schulman 2020,
"Approximating KL divergence"): with d = ref_logp - logp on tokens sampled from the policy,

  k1 = -d                 (unbiased, high variance, can be negative)
  k2 = d^2 / 2            (biased, low variance)
  k3 = exp(d) - d - 1     (unbiased, low variance, always >= 0; GRPO's choice)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

KLFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def k1(logp_BT: torch.Tensor, ref_logp_BT: torch.Tensor) -> torch.Tensor:
    return logp_BT - ref_logp_BT


def k2(logp_BT: torch.Tensor, ref_logp_BT: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logp_BT - ref_logp_BT) ** 2


def k3(logp_BT: torch.Tensor, ref_logp_BT: torch.Tensor) -> torch.Tensor:
    d = (ref_logp_BT - logp_BT).clamp(-20.0, 20.0)  # exp overflow guard on wildly off tokens
    return torch.exp(d) - d - 1.0


KL_ESTIMATORS: dict[str, KLFn] = {"k1": k1, "k2": k2, "k3": k3}
