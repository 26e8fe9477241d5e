"""The ``algo`` section: advantage estimator, policy loss, aggregation, KL and filters
(docs/ALGORITHMS.md §1-2; the functions live in ``tirl.algo``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tirl.config.base import Section


class AlgoConfig(Section):
    advantage: Literal["grpo", "dr_grpo", "rloo"] = "grpo"
    std_normalize: bool = True
    """GRPO std normalisation; False is Dr. GRPO's choice."""
    adv_eps: float = 1e-6
    loss: Literal["ppo_clip", "gspo"] = "ppo_clip"
    clip_low: float = Field(0.2, ge=0.0)
    clip_high: float = Field(0.2, ge=0.0)
    dual_clip: float | None = None
    aggregation: Literal["token_mean", "seq_mean_token_mean", "seq_sum_norm"] = "token_mean"
    norm_constant: float | None = None
    """seq_sum_norm's divisor; None: max_response_tokens."""
    kl_coef: float = Field(0.0, ge=0.0)
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    dynamic_sampling: bool = False
    """DAPO: drop zero-variance groups and sample more tasks until the batch is full."""
    max_resample_rounds: int = Field(3, ge=0)
    """Cap on extra sampling rounds per step under dynamic sampling."""
    ppo_epochs: int = Field(1, ge=1)
    """Optimiser passes over each batch (1 = strictly on-policy)."""
    mask_truncated: bool = False
    """Zero the loss mask of trajectories cut by the token budget."""
    offpolicy_coef: float = Field(0.0, ge=0.0)
    """Weight of the off-policy term on expert tokens of the rows (offpolicy = 1 and not
    detached; E3-TIR's expert-guided sample); 0 disables it. Its tokens share the aggregation's
    normaliser with the policy tokens (LUFFY, arXiv 2504.14945, Eq. 6)."""
    offpolicy_loss: Literal["regularized_is"] = "regularized_is"
    """The off-policy term (``tirl.algo.offpolicy``): LUFFY's regularised importance weight
    -p/(p + gamma) * A, with the expert's probability taken as 1."""
    offpolicy_gamma: float = Field(0.1, gt=0.0)
    """gamma of p/(p + gamma) (LUFFY: 0.1)."""
