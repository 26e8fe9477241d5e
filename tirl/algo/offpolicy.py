"""The off-policy per-token loss for expert tokens, with the policy-loss signature
(``fn(LossInput, LossConfig) -> LossOutput``, ``tirl.algo.policy_loss``).

``regularized_is`` — LUFFY's policy shaping (Yan et al. 2025, "Learning to Reason under
Off-Policy Guidance", arXiv 2504.14945, §3.3, Eq. 6-7). An expert token was not sampled by the
policy and its behaviour probability is unknown, so the importance ratio is taken with
``pi_expert = 1``: ``r_t = pi_theta(t)``. Instead of the raw ratio the term uses the
regularised weight

    f(p) = p / (p + gamma),        l_t = -f(p_t) * A_t,        p_t = exp(logp_t)

whose gradient ``gamma / (p + gamma)^2 * grad p`` is large for tokens the policy finds unlikely
and small for tokens it already predicts, so the expert's rare, informative tokens are learnt
without the entropy collapse of plain imitation. No clipping (LUFFY clips only the on-policy
ratio); ``old_logp_BT`` and the clip bounds are not used. E3-TIR (ALGORITHMS.md §5) trains its
expert-guided sample with this term, weighted by the sample's advantage.
"""

from __future__ import annotations

import torch

from tirl.algo.policy_loss import LossConfig, LossInput, LossOutput


def regularized_is(x: LossInput, cfg: LossConfig) -> LossOutput:
    gamma = cfg.offpolicy_gamma
    if gamma <= 0:
        raise ValueError(f"offpolicy_gamma must be > 0 (LUFFY uses 0.1), got {gamma}")
    p_BT = torch.exp(x.logp_BT)
    f_BT = p_BT / (p_BT + gamma)
    loss_BT = -f_BT * x.adv_BT
    return LossOutput(loss_BT=loss_BT, ratio_BT=f_BT.detach(), clipped_BT=torch.zeros_like(x.mask_BT, dtype=torch.bool))
