"""Per-token log-probabilities (and entropies) of a sequence under a model.

Aligned with the input ids: ``logp_BT[:, t] = log p(ids[t] | ids[:t])`` for t >= 1 and 0 at
t = 0 (a prompt position, never trained), so every per-token array of a TrainRow lines up
with it without shifting.

Only positions from ``first`` on are scored: the output layer and the softmax over the
vocabulary (49k entries for SmolLM2) are the costliest per-position work, and prompt positions
are never trained. Positions before ``first`` get log-prob 0. For Llama-family models the
output layer and the softmax run fused (``tirl.train.fused_head``: no logits tensor is kept).

Shared prefixes (``prefix``, a ``SharedPrefix``): rows come in groups whose members start with
the same tokens (a GRPO group's rows share their prompt; a tree's leaves share their root).
Each group's prefix runs once, with gradient — all groups of the batch in one padded forward —
and its keys/values are handed to each member row, whose own tokens then run on top of them at
their true positions (the padding between a short prefix and its row's tokens is masked out).
The result and its gradient are those of the unshared forward (attention is causal, so a
prefix position never sees a row's tokens; the selected keys/values send each row's gradient
back into the one prefix computation) at a fraction of the cost: with SmolLM2's 260-token TIR
prompt and ~100-token answers, a group of 4 rows runs 684 positions instead of 1,464. Several
groups in one batch keep the matrices large, which is what CPU matmuls need to run fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tirl.engine.device import resolve_bf16
from tirl.models.cache import cache_arg, returned_cache
from tirl.models.checkpointing import ReplayableCache
from tirl.train.fused_head import head_logprobs

FUSED_HEAD_MODELS = ("llama", "qwen2", "qwen3", "mistral")
"""Model types whose logits are exactly ``lm_head(final hidden state)`` (no scaling or
soft-capping), so the fused output layer may replace the model's own."""


@dataclass(frozen=True)
class SharedPrefix:
    """Row ``b`` belongs to group ``group_B[b]``, whose rows all begin with the same
    ``length_G[group]`` tokens (0: nothing shared, the row runs whole)."""

    group_B: torch.Tensor
    length_G: torch.Tensor

    @classmethod
    def single(cls, n_rows: int, length: int) -> SharedPrefix:
        """Every row in one group sharing ``length`` tokens."""
        return cls(torch.zeros(n_rows, dtype=torch.long), torch.tensor([length]))


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


def shared_prefixes(ids_BT: torch.Tensor, attn_BT: torch.Tensor, mask_BT: torch.Tensor, key_B: Sequence[str]) -> SharedPrefix | None:
    """Rows with the same key (a task id; '' never groups) form a group; each group's prefix is
    its rows' ``shared_prefix_len`` below the group's first scored position. None when nothing
    is shared."""
    index: dict[str, int] = {}
    group = [index.setdefault(k, len(index)) if k else -1 for k in key_B]
    group = [g if g >= 0 else len(index) + i for i, g in enumerate(group)]  # '' rows: a group each
    group_B = torch.tensor(group, dtype=torch.long)
    group_B = torch.unique(group_B, return_inverse=True)[1]
    lengths = []
    for g in range(int(group_B.max()) + 1 if len(group) else 0):
        rows = (group_B == g).nonzero().flatten()
        lengths.append(shared_prefix_len(ids_BT[rows], attn_BT[rows], first_scored_position(mask_BT[rows])))
    if not any(lengths):
        return None
    return SharedPrefix(group_B, torch.tensor(lengths, dtype=torch.long))


def _is_fsdp(model) -> bool:
    # An FSDP2 model exists only once torch.distributed.fsdp is imported; checking sys.modules avoids importing it.
    fsdp = sys.modules.get("torch.distributed.fsdp")
    return fsdp is not None and isinstance(model, fsdp.FSDPModule)


def _fused_head(model) -> torch.nn.Linear | None:
    """The output layer when the fused log-prob path applies, else None. Not for an FSDP model:
    its parameters are gathered by hooks on the whole model's forward, which the fused path
    (decoder, then the output layer's weight) would go around."""
    if _is_fsdp(model):
        return None
    cfg = getattr(model, "config", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if getattr(cfg, "model_type", None) not in FUSED_HEAD_MODELS or type(head) is not torch.nn.Linear:
        return None
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return None
    return head


def _suffix_batch(ids_BT: torch.Tensor, attn_BT: torch.Tensor, start_B: torch.Tensor, pad_id: int):
    """Each row's tokens from ``start_B[b]`` on, left-aligned and right-padded: (ids, positions,
    real-token mask)."""
    B, T = ids_BT.shape
    n_B = attn_BT.sum(1) - start_B
    S = int(n_B.max())
    cols_S = torch.arange(S)
    pos_BS = start_B[:, None] + cols_S[None, :]
    real_BS = cols_S[None, :] < n_B[:, None]
    ids_BS = torch.where(real_BS, ids_BT.gather(1, pos_BS.clamp(max=T - 1)), pad_id)
    return ids_BS, pos_BS, real_BS


def token_logprobs(
    model,
    ids_BT: torch.Tensor,
    attn_BT: torch.Tensor,
    with_entropy: bool = False,
    bf16: bool | None = None,
    first: int = 1,
    prefix: SharedPrefix | int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``prefix``: leading tokens shared by groups of rows, run once per group. Each row's prefix
    must end before the row's first scored token: ``shared_prefixes`` guarantees it; an int
    (all rows share that many tokens) must be below ``first``."""
    B, T = ids_BT.shape
    first = min(max(first, 1), T)
    if isinstance(prefix, int):
        if prefix >= first:
            raise ValueError(f"shared prefix {prefix} must end before the first scored position {first}")
        prefix = SharedPrefix.single(B, prefix) if prefix > 0 else None
    if prefix is not None and int(prefix.length_G.max()) == 0:
        prefix = None
    bf16 = resolve_bf16(bf16)
    head = _fused_head(model)
    pad = getattr(getattr(model, "config", None), "pad_token_id", None) or 0
    start_B = prefix.length_G[prefix.group_B] if prefix is not None else torch.zeros(B, dtype=torch.long)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if prefix is None:  # the whole rows, in place (padding included, as the model sees it)
            ids_BS, pos_BS, real_BS = ids_BT, torch.arange(T)[None].expand(B, T), attn_BT > 0
            kw = {"input_ids": ids_BT, "attention_mask": attn_BT, "use_cache": False}
        else:
            ids_BS, pos_BS, real_BS = _suffix_batch(ids_BT, attn_BT, start_B, pad)
            kw = _on_shared_prefix(model if head is None else model.get_decoder(), ids_BT, prefix, ids_BS, pos_BS, real_BS, pad)
        # column j of a row's run predicts its token at position pos + 1; score from `first` on
        j0 = max(0, int((first - 1 - start_B).min()))
        keep = ids_BS.shape[1] - j0
        if head is None:
            logits_BKV = model(**kw, logits_to_keep=keep).logits[:, :-1].float()
            logp_all = torch.log_softmax(logits_BKV, dim=-1)
            target_BK = ids_BS[:, j0 + 1 :]
            logp_BK = logp_all.gather(-1, target_BK[..., None]).squeeze(-1)
            ent_BK = None
            if with_entropy:
                with torch.no_grad():
                    ent_BK = -(logp_all.exp() * logp_all).sum(-1)
        else:
            hidden_BSH = model.get_decoder()(**kw).last_hidden_state
            # only real positions go through the output layer (padding would be wasted work)
            live_BK = real_BS[:, j0 + 1 :] if prefix is not None else torch.ones(B, keep - 1, dtype=torch.bool)
            hidden_NH = hidden_BSH[:, j0:-1][live_BK]
            target_N = ids_BS[:, j0 + 1 :][live_BK]
            logp_N, ent_N = head_logprobs(hidden_NH, head, target_N, bf16, with_entropy)
            logp_BK = torch.zeros(live_BK.shape).masked_scatter(live_BK, logp_N)
            ent_BK = torch.zeros(live_BK.shape).masked_scatter(live_BK, ent_N) if with_entropy else None
    return _place(logp_BK, pos_BS, real_BS, j0, first, T, prefix is None), (
        _place(ent_BK, pos_BS, real_BS, j0, first, T, prefix is None) if ent_BK is not None else None
    )


def _on_shared_prefix(net, ids_BT: torch.Tensor, prefix: SharedPrefix, ids_BS, pos_BS, real_BS, pad: int) -> dict:
    """Run each group's prefix once (the groups right-padded into one batch) and return the
    keyword arguments that run the rows' own tokens on top of it."""
    G, P = len(prefix.length_G), int(prefix.length_G.max())
    row_of_G = torch.zeros(G, dtype=torch.long).scatter_(0, prefix.group_B, torch.arange(len(prefix.group_B)))  # any member
    cols_P = torch.arange(P)
    in_prefix_GP = cols_P[None, :] < prefix.length_G[:, None]
    pre_ids = torch.where(in_prefix_GP, ids_BT[row_of_G, :P], pad)
    # right padding behind a short prefix is causal-invisible to its real tokens; no mask needed here
    # a cache whose answers do not change when a layer runs twice (activation checkpointing's
    # recomputation, tirl.models.checkpointing): the rows' pass reads the prompt's keys/values
    # and stores nothing
    cache = ReplayableCache()
    pre = net(input_ids=pre_ids, use_cache=True, **cache_arg(cache), **({"logits_to_keep": 1} if hasattr(net, "lm_head") else {}))
    cache = returned_cache(pre).frozen_rows(prefix.group_B)
    # keys: the group's prefix (its padding masked), then the row's own tokens
    attn = torch.cat([in_prefix_GP[prefix.group_B], real_BS], dim=1).long()
    return {"input_ids": ids_BS, "attention_mask": attn, "position_ids": pos_BS, "use_cache": True, **cache_arg(cache)}


def _place(vals_BK: torch.Tensor, pos_BS: torch.Tensor, real_BS: torch.Tensor, j0: int, first: int, T: int, in_place: bool) -> torch.Tensor:
    """Values for run columns j0+1.. back at their token positions in the (B, T) layout, 0
    before ``first`` (and, for rows run from a shared prefix, at padding)."""
    B = vals_BK.shape[0]
    if in_place:  # run columns are positions
        return torch.cat([torch.zeros(B, first, dtype=vals_BK.dtype), vals_BK[:, first - 1 - j0 :]], dim=1)
    pos_BK, ok_BK = pos_BS[:, j0 + 1 :], real_BS[:, j0 + 1 :] & (pos_BS[:, j0 + 1 :] >= first)
    out = torch.zeros(B, T + 1, dtype=vals_BK.dtype)  # column T takes what is dropped
    return out.scatter(1, torch.where(ok_BK, pos_BK, T), torch.where(ok_BK, vals_BK, 0.0))[:, :T]
