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
    if bool((temp_B != 1).any()):  # a pass over B x V saved in the common case
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


CDF_BLOCK = 1024
"""Vocabulary entries per block of the two-level inverse CDF."""


def inverse_cdf(probs_BV: torch.Tensor, uniform_B: torch.Tensor, block: int = CDF_BLOCK) -> torch.Tensor:
    """The token whose CDF interval holds ``uniform_B * total``, per row: u in [0, total) falls
    in token i's interval [cdf_{i-1}, cdf_i), which has width p_i, so a zero-probability
    (filtered) token is never chosen. Two levels, for speed on a large vocabulary: the block
    from a running sum of the blocks' masses, then the token from a float64 running sum over
    that block alone, with u's offset rescaled to the block's own total (so within the block the
    choice is exactly proportional; the blocks' masses, summed in float32, are good to ~1e-7).
    A single float64 cumsum over the whole vocabulary converts and sums entries that are never
    looked at: 0.68 against 0.30 ms for 16 x 49,152, 19.7 against 1.2 ms for 64 rows
    (bench/engine_kernels.py, docs/BENCHMARKS.md)."""
    B, V = probs_BV.shape
    n_blocks = -(-V // block)
    padded_BV = probs_BV if n_blocks * block == V else torch.nn.functional.pad(probs_BV, (0, n_blocks * block - V))
    blocks_BNK = padded_BV.view(B, n_blocks, block)
    mass_BN = blocks_BNK.sum(-1).double()
    cdf_BN = mass_BN.cumsum(-1)
    u_B1 = uniform_B.to(torch.float64)[:, None] * cdf_BN[:, -1:]
    # the first block whose running mass exceeds u (side="right"), then u's place inside it
    blk_B = torch.searchsorted(cdf_BN, u_B1, right=True).squeeze(-1).clamp(max=n_blocks - 1)
    rows_B = torch.arange(B)
    frac_B1 = ((u_B1.squeeze(-1) - (cdf_BN[rows_B, blk_B] - mass_BN[rows_B, blk_B])) / mass_BN[rows_B, blk_B])[:, None]
    inside_BK = blocks_BNK[rows_B, blk_B]
    inner_BK = inside_BK.double().cumsum(-1)
    idx_B = torch.searchsorted(inner_BK, frac_B1.clamp(0.0, 1.0) * inner_BK[:, -1:], right=True).squeeze(-1)
    # u exactly at the block's end (rounding) would point past it: take the last positive entry
    last_B = torch.where(inside_BK > 0, torch.arange(block), -1).amax(-1).clamp(min=0)
    return (blk_B * block + torch.minimum(idx_B, last_B)).clamp(max=V - 1)


def sample_tokens(
    logits_BV: torch.Tensor,
    temperature_B: torch.Tensor,
    top_k_B: torch.Tensor,
    top_p_B: torch.Tensor,
    generator: torch.Generator | None = None,
    uniform_B: torch.Tensor | None = None,
) -> Sampled:
    """One token per row. ``uniform_B`` (float64 in [0, 1)) supplies each row's random number
    (so a row's sample can come from its own stream); otherwise they are drawn from ``generator``.
    Inverse-CDF sampling with one uniform per row, rather than an exponential race over the
    vocabulary, which would draw one random number per entry (49,152 per row per step)."""
    logp_BV = filtered_logprobs(logits_BV, temperature_B, top_k_B, top_p_B)
    probs_BV = logp_BV.exp()
    if uniform_B is None:
        uniform_B = torch.rand(probs_BV.shape[0], generator=generator, dtype=torch.float64)
    token_B = inverse_cdf(probs_BV, uniform_B)
    if bool((temperature_B <= 0).any()):
        token_B = torch.where(temperature_B > 0, token_B, logp_BV.argmax(dim=-1))
    logprob_B = logp_BV.gather(-1, token_B[:, None]).squeeze(-1)
    # filtered entries (p = 0, log p = -inf) contribute nothing: their 0 * -inf = nan is skipped
    entropy_B = -torch.nansum(probs_BV * logp_BV, dim=-1)
    return Sampled(token_B=token_B, logprob_B=logprob_B, entropy_B=entropy_B)
