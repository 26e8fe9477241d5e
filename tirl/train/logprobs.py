"""Per-token log-probabilities (and entropies) of a sequence under a model.

Aligned with the input ids: ``logp_BT[:, t] = log p(ids[t] | ids[:t])`` for t >= 1 and 0 at
t = 0 (a prompt position, never trained), so every per-token array of a TrainRow lines up
with it without shifting.

Only positions from ``first`` on are scored: the output layer and the softmax over the
vocabulary (49k entries for SmolLM2) are the costliest per-position work, and prompt positions
are never trained. Positions before ``first`` get log-prob 0.

Shared prefix (``prefix = P > 0``): when every row starts with the same P tokens (a GRPO
group's rows share their prompt; a tree's leaves share their root), those tokens are run once,
with gradient, and their keys/values are repeated for each row before the rows' own tokens
run on top of them. The result and its gradient are those of the unshared forward (attention
is causal, so a prefix position never sees a row's tokens; the repeated keys/values send each
row's gradient back into the one prefix computation) at a fraction of the cost: with
SmolLM2's 260-token TIR prompt and ~100-token answers, a group of 4 rows runs 684 positions
instead of 1,464.
"""

from __future__ import annotations

import torch

from tirl.engine.device import resolve_bf16
from tirl.models.cache import cache_arg, returned_cache


def first_scored_position(mask_BT: torch.Tensor) -> int:
    """The first column where any row has a trained token (at least 1)."""
    cols = mask_BT.sum(0).nonzero()
    return max(1, int(cols[0])) if len(cols) else mask_BT.shape[1]


def shared_prefix_len(ids_BT: torch.Tensor, attn_BT: torch.Tensor, first: int) -> int:
    """How many leading tokens all rows share and ``token_logprobs`` may run once: the common
    prefix of the rows' real tokens, below ``first`` (the position predicting the first scored
    token must be a row's own position), 0 for a single row or a prefix shorter than 2."""
    B, T = ids_BT.shape
    if B < 2:
        return 0
    same_T = ((ids_BT == ids_BT[:1]) & (attn_BT > 0)).all(0)
    differs = (~same_T).nonzero()
    p = int(differs[0]) if len(differs) else T
    p = min(p, first - 1, T - 1)
    return p if p >= 2 else 0


def _logits(model, ids_BT: torch.Tensor, attn_BT: torch.Tensor, keep: int, prefix: int) -> torch.Tensor:
    if prefix <= 0:
        return model(input_ids=ids_BT, attention_mask=attn_BT, logits_to_keep=keep).logits
    B = ids_BT.shape[0]
    pre = model(input_ids=ids_BT[:1, :prefix], use_cache=True, logits_to_keep=1)
    cache = returned_cache(pre)
    cache.batch_repeat_interleave(B)
    return model(input_ids=ids_BT[:, prefix:], attention_mask=attn_BT, use_cache=True, logits_to_keep=keep, **cache_arg(cache)).logits


def token_logprobs(model, ids_BT: torch.Tensor, attn_BT: torch.Tensor, with_entropy: bool = False, bf16: bool | None = None, first: int = 1, prefix: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``prefix``: leading tokens shared by every row (``shared_prefix_len``), run once; must be
    below ``first``."""
    B, T = ids_BT.shape
    first = min(max(first, 1), T)
    if prefix >= first:
        raise ValueError(f"shared prefix {prefix} must end before the first scored position {first}")
    keep = T - first + 1  # logits at positions first-1 .. T-1 predict tokens first .. T (the last is dropped)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=resolve_bf16(bf16)):
        logits_BKV = _logits(model, ids_BT, attn_BT, keep, prefix)
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
