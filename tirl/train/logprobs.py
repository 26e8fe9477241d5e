"""Per-token log-probabilities (and entropies) of a sequence under a model.

Aligned with the input ids: ``logp_BT[:, t] = log p(ids[t] | ids[:t])`` for t >= 1 and 0 at
t = 0 (a prompt position, never trained), so every per-token array of a TrainRow lines up
with it without shifting.
"""

from __future__ import annotations

import torch


def token_logprobs(model, ids_BT: torch.Tensor, attn_BT: torch.Tensor, with_entropy: bool = False, bf16: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits_BTV = model(input_ids=ids_BT, attention_mask=attn_BT).logits
    logits_BTV = logits_BTV[:, :-1].float()
    logp_all = torch.log_softmax(logits_BTV, dim=-1)
    logp_BT = logp_all.gather(-1, ids_BT[:, 1:, None]).squeeze(-1)
    zero = torch.zeros_like(logp_BT[:, :1])
    logp_BT = torch.cat([zero, logp_BT], dim=1)
    ent_BT = None
    if with_entropy:
        with torch.no_grad():
            ent = -(logp_all.exp() * logp_all).sum(-1)
        ent_BT = torch.cat([zero.detach(), ent], dim=1)
    return logp_BT, ent_BT
