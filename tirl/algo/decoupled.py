"""The behaviour importance weight of decoupled PPO, truncated (ALGORITHMS.md §10).

When rollouts may come from weights up to ``max_staleness`` optimiser steps old (the sampling of
step t+1 overlaps the update of step t), the policy that sampled a token (the behaviour policy,
whose log-prob the engine recorded) is not the policy the PPO ratio is anchored to (the
proximal policy: the weights at the start of this update). Decoupled PPO (Hilton, Cobbe,
Schulman 2022, "Batch size-invariance for policy optimization", arXiv 2110.00641, §3; used for
asynchronous RL by AReaL, Fu et al. 2025, arXiv 2505.24298, §5.2 Eq. 5) keeps the clipped ratio
against the proximal policy and multiplies each token's loss by the importance weight

    w_t = pi_prox(a_t | s_t) / pi_behav(a_t | s_t),

treated as a constant. Truncating it at ``cap`` (truncated importance sampling; Espeholt et al.
2018, IMPALA, arXiv 1802.01561, §4.1; Yao et al. 2025, "Your efficient RL framework secretly
brings you off-policy RL training", who truncate at 2 for the sampler/trainer mismatch) bounds
the variance a very stale or badly synchronised token could add, at the cost of a small bias.
"""

from __future__ import annotations

import torch


def behaviour_weight(prox_logp_BT: torch.Tensor, behav_logp_BT: torch.Tensor, mask_BT: torch.Tensor, cap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_BT, truncated_BT)``: min(pi_prox / pi_behav, cap) per token where ``mask_BT`` is 1 (1
    elsewhere), without gradient, and where the truncation bound."""
    if cap < 1:
        raise ValueError(f"the truncation of the behaviour weight must be >= 1, got {cap}")
    raw_BT = torch.exp((prox_logp_BT.detach() - behav_logp_BT) * mask_BT)
    truncated_BT = (raw_BT > cap) & (mask_BT > 0)
    return torch.where(mask_BT > 0, raw_BT.clamp(max=cap), torch.ones_like(raw_BT)), truncated_BT
