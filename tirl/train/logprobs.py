"""Per-token log-probabilities (and entropies) of a sequence under a model.

Aligned with the input ids: ``logp_BT[:, t] = log p(ids[t] | ids[:t])`` for t >= 1 and 0 at
t = 0 (a prompt position, never trained), so every per-token array of a TrainRow lines up
with it without shifting.

Only positions from ``first`` on are scored: the output layer and the softmax over the
vocabulary (49k entries for SmolLM2) are the costliest per-position work, and prompt positions
are never trained. Positions before ``first`` get log-prob 0.
"""

from __future__ import annotations

import torch

from tirl.engine.device import resolve_bf16


def first_scored_position(mask_BT: torch.Tensor) -> int:
    """The first column where any row has a trained token (at least 1)."""
    cols = mask_BT.sum(0).nonzero()
    return max(1, int(cols[0])) if len(cols) else mask_BT.shape[1]


def token_logprobs(model, ids_BT: torch.Tensor, attn_BT: torch.Tensor, with_entropy: bool = False, bf16: bool | None = None, first: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
    B, T = ids_BT.shape
    first = min(max(first, 1), T)
    keep = T - first + 1  # logits at positions first-1 .. T-1 predict tokens first .. T (the last is dropped)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=resolve_bf16(bf16)):
        logits_BKV = model(input_ids=ids_BT, attention_mask=attn_BT, logits_to_keep=keep).logits
    logits_BKV = logits_BKV[:, :-1].float()
    logp_all = torch.log_softmax(logits_BKV, dim=-1)
    logp_BK = logp_all.gather(-1, ids_BT[:, first:, None]).squeeze(-1)
    pad = torch.zeros(B, first, dtype=logp_BK.dtype)
    logp_BT = torch.cat([pad, logp_BK], dim=1)
    ent_BT = None
    if with_entropy:
        with torch.no_grad():
            ent_BT = torch.cat([pad, -(logp_all.exp() * logp_all).sum(-1)], dim=1)
    return logp_BT, ent_BT
