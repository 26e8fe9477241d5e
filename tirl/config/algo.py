"""The ``algo`` section: advantage estimator, policy loss, aggregation, KL and filters
(docs/ALGORITHMS.md §1-2; the functions live in ``tirl.algo``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tirl.config.base import Section


class AlgoConfig(Section):
    advantage: Literal["grpo", "dr_grpo", "rloo"] = "grpo"
    """grpo: std-normalised; dr_grpo: Dr. GRPO, not normalised (the only way to select it)."""
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
    """DAPO: when sampling, drop groups whose rewards are all equal and sample more tasks until
    the batch is full (any strategy). E3-TIR's ``strategy.e3.filter_zero_variance`` is a
    separate, narrower filter: at credit time, during the warm-up only, no refill."""
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
    offpolicy_gamma: float = Field(0.1, gt=0.0)
    """gamma of the off-policy term's weight p/(p + gamma) (``tirl.algo.offpolicy``; LUFFY: 0.1)."""

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        """Configs saved before two keys were removed still load (a run resumes); a value the
        code no longer has is an error. ``std_normalize``: Dr. GRPO is ``advantage: dr_grpo``
        only (dr_grpo and rloo never read the key). ``offpolicy_loss``: its one value, ``regularized_is``, is the only off-policy term."""
        if not isinstance(data, dict) or ("std_normalize" not in data and "offpolicy_loss" not in data):
            return data
        data = dict(data)
        if data.pop("std_normalize", True) in (False, "false") and data.get("advantage", "grpo") == "grpo":
            raise ValueError("algo.std_normalize was removed: for Dr. GRPO set algo.advantage=dr_grpo")
        if data.pop("offpolicy_loss", "regularized_is") != "regularized_is":
            raise ValueError("algo.offpolicy_loss was removed: the off-policy term is regularized_is")
        return data
