"""Per-row sampling from logits: temperature, top-k, top-p, and the log-prob and entropy of
the distribution each token was actually drawn from. Pure tensor code, no model, no device logic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Sampled:
    token_B: torch.Tensor  # (B,) long
    logprob_B: torch.Tensor  # (B,) float32, log p(token) under the filtered distribution
    entropy_B: torch.Tensor  # (B,) float32, entropy of the filtered distribution


def filtered_logprobs(logits_BV: torch.Tensor, temperature_B: torch.Tensor, top_k_B: torch.Tensor, top_p_B: torch.Tensor) -> torch.Tensor:
    """Log-probabilities after temperature, top-k and top-p, per row (filtered entries are -inf).

    A temperature of 0 (greedy) is scored at temperature 1: the chosen token is the argmax,
    and its log-prob / the entropy describe the model's untempered distribution.
    """
    logits_BV = logits_BV.float()
    temp_B = torch.where(temperature_B > 0, temperature_B, torch.ones_like(temperature_B))
    logits_BV = logits_BV / temp_B[:, None]
    V = logits_BV.shape[-1]
    need_k = bool(((top_k_B > 0) & (top_k_B < V)).any())
    need_p = bool((top_p_B < 1.0).any())
    if need_k or need_p:
        sorted_BV, idx_BV = torch.sort(logits_BV, dim=-1, descending=True)
        drop_BV = torch.zeros_like(sorted_BV, dtype=torch.bool)
        if need_k:
            rank_V = torch.arange(V, device=logits_BV.device)
            k_B = torch.where(top_k_B > 0, top_k_B, torch.full_like(top_k_B, V))
            drop_BV |= rank_V[None, :] >= k_B[:, None]
        if need_p:
            probs_BV = torch.softmax(sorted_BV.masked_fill(drop_BV, float("-inf")), dim=-1)
            # keep the smallest prefix whose mass reaches top_p: drop a token when the mass
            # *before* it already reaches top_p (the top token is always kept)
            mass_before_BV = torch.cumsum(probs_BV, dim=-1) - probs_BV
            drop_BV |= mass_before_BV >= top_p_B[:, None]
        sorted_BV = sorted_BV.masked_fill(drop_BV, float("-inf"))
        logits_BV = torch.full_like(logits_BV, float("-inf")).scatter(-1, idx_BV, sorted_BV)
    return torch.log_softmax(logits_BV, dim=-1)


def sample_tokens(
    logits_BV: torch.Tensor,
    temperature_B: torch.Tensor,
    top_k_B: torch.Tensor,
    top_p_B: torch.Tensor,
    generator: torch.Generator | None = None,
    uniform_B: torch.Tensor | None = None,
) -> Sampled:
    """One token per row. ``uniform_B`` (float64 in [0, 1)) supplies each row's random number
    (so a row's sample can come from its own stream); otherwise they are drawn from ``generator``."""
    logp_BV = filtered_logprobs(logits_BV, temperature_B, top_k_B, top_p_B)
    probs_BV = logp_BV.exp()
    # inverse-CDF sampling, one uniform per row: u in [0, total) falls in token i's interval
    # [cdf_{i-1}, cdf_i), which has width p_i (side="right" never lands on a zero-width,
    # filtered token). On CPU this is ~40x faster than an exponential race over the vocabulary
    # (3 vs 130 ms for 64 x 49152), which draws one random number per entry. float64 keeps the
    # running sum exact enough over a large vocabulary.
    cdf_BV = probs_BV.double().cumsum(dim=-1)
    if uniform_B is None:
        uniform_B = torch.rand(cdf_BV.shape[0], generator=generator, dtype=torch.float64)
    u_B1 = uniform_B.to(torch.float64)[:, None] * cdf_BV[:, -1:]
    sampled_B = torch.searchsorted(cdf_BV, u_B1, right=True).squeeze(-1).clamp(max=probs_BV.shape[-1] - 1)
    greedy_B = logp_BV.argmax(dim=-1)
    token_B = torch.where(temperature_B > 0, sampled_B, greedy_B)
    logprob_B = logp_BV.gather(-1, token_B[:, None]).squeeze(-1)
    # 0 * -inf is nan: filtered entries contribute nothing to the entropy
    entropy_B = -(probs_BV * logp_BV.masked_fill(probs_BV == 0, 0.0)).sum(-1)
    return Sampled(token_B=token_B, logprob_B=logprob_B, entropy_B=entropy_B)
