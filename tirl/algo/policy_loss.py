"""Per-token policy losses, one signature for all (``fn(LossInput, LossConfig) -> LossOutput``).

``ppo_clip`` (PPO, Schulman et al. 2017, eq. 7; with per-token clip bounds so ELPO's
error-localised clipping and DAPO's clip-higher are just arrays):

    l_t = -min(r_t A_t, clip(r_t, 1 - eps_low_t, 1 + eps_high_t) A_t),   r_t = exp(logp_t - old_logp_t)

with the optional dual clip for A < 0 (Ye et al. 2020): l_t = min(l_t, -c A_t).

``gspo`` (Zheng et al. 2025, GSPO eq. 7 token-wise form): the ratio of every token is the
sequence ratio s_i = exp(mean_t m_t (logp - old_logp)), carried with a stop-gradient so each
token's gradient is s_i * grad logp_t: s_it = sg[s_i] * exp(logp_t - sg[logp_t]).

Losses are per token; ``aggregate`` reduces them (tirl.algo.aggregate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class LossInput:
    logp_BT: torch.Tensor  # current policy log-probs of the taken tokens
    old_logp_BT: torch.Tensor  # behaviour / old policy log-probs
    adv_BT: torch.Tensor
    mask_BT: torch.Tensor  # 1 = trained token
    clip_low_BT: torch.Tensor  # eps_low per token
    clip_high_BT: torch.Tensor  # eps_high per token


@dataclass(frozen=True)
class LossConfig:
    dual_clip: float | None = None
    """Dual-clip constant c (> 1) bounding the loss of negative-advantage tokens; None disables it."""
    offpolicy_gamma: float = 0.1
    """gamma of the off-policy term's regularised importance weight p / (p + gamma) (LUFFY;
    ``tirl.algo.offpolicy``); unused by the on-policy losses."""


@dataclass
class LossOutput:
    loss_BT: torch.Tensor
    ratio_BT: torch.Tensor  # the ratio the loss used (detached)
    clipped_BT: torch.Tensor  # bool: the clipped branch was active


PolicyLossFn = Callable[[LossInput, LossConfig], LossOutput]


def _clipped_objective(ratio_BT: torch.Tensor, x: LossInput, cfg: LossConfig) -> LossOutput:
    adv = x.adv_BT
    clipped_ratio = torch.maximum(torch.minimum(ratio_BT, 1.0 + x.clip_high_BT), 1.0 - x.clip_low_BT)
    unclipped_loss = -ratio_BT * adv
    clipped_loss = -clipped_ratio * adv
    loss = torch.maximum(unclipped_loss, clipped_loss)
    clipped = clipped_loss > unclipped_loss
    if cfg.dual_clip is not None:
        if cfg.dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {cfg.dual_clip}")
        dual = -cfg.dual_clip * adv
        use_dual = (adv < 0) & (loss > dual)
        loss = torch.where(use_dual, dual, loss)
        clipped = clipped | use_dual
    return LossOutput(loss_BT=loss, ratio_BT=ratio_BT.detach(), clipped_BT=clipped & x.mask_BT.bool())


def ppo_clip(x: LossInput, cfg: LossConfig) -> LossOutput:
    ratio_BT = torch.exp(x.logp_BT - x.old_logp_BT)
    return _clipped_objective(ratio_BT, x, cfg)


def gspo(x: LossInput, cfg: LossConfig) -> LossOutput:
    m = x.mask_BT.to(x.logp_BT.dtype)
    n_B = m.sum(-1).clamp(min=1)
    log_s_B = ((x.logp_BT - x.old_logp_BT) * m).sum(-1) / n_B
    ratio_BT = torch.exp(log_s_B.detach()[:, None] + x.logp_BT - x.logp_BT.detach())
    return _clipped_objective(ratio_BT, x, cfg)


POLICY_LOSSES: dict[str, PolicyLossFn] = {"ppo_clip": ppo_clip, "gspo": gspo}
