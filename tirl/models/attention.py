"""Which attention kernel a training forward/backward uses.

On CPU, torch's fused SDPA kernel (transformers' default ``sdpa``) is fast forward but its
backward is not (``_scaled_dot_product_flash_attention_for_cpu_backward`` costs several times
the forward kernel), so transformers' ``eager`` attention (matmul, softmax, matmul,
differentiated by autograd) makes the whole update faster (profile and timings:
docs/BENCHMARKS.md, ``bench/train_attention.py``). Generation and no-grad scoring keep the model's own kernel;
only the passes that back-propagate switch, and switch back afterwards.

``grouped`` is eager attention without the grouped-query expansion: transformers' eager path
copies every key/value head once per query head sharing it (``repeat_kv``: 3x for SmolLM2's 9
query over 3 key/value heads) and sums the copies' gradients back; here the query heads of a
group are stacked into one (G x queries, D) @ (D, keys) product per key/value head instead.
Same operations in the same precision otherwise (the 1/sqrt(D) scale is applied to the queries,
which is exact for power-of-four head sizes such as SmolLM2's 64): the log-probs are
bit-identical to eager's, and the update is faster than eager's (docs/BENCHMARKS.md).
It is registered with transformers' ``AttentionInterface`` (its extension point for attention
kernels) and is what ``auto`` picks on CPU for the Llama family.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

Attention = Literal["auto", "grouped", "eager", "sdpa", "model"]

GROUPED = "tirl_grouped"
"""The name ``grouped`` is registered under in transformers' attention registry."""

GROUPED_MODELS = ("llama", "qwen2", "qwen3", "mistral")
"""Model types whose eager attention is plain scaled dot-product attention with an additive
mask (no soft-capping, no attention sinks), so ``grouped`` computes the same thing."""


def grouped_attention(module, query, key, value, attention_mask, scaling: float, dropout: float = 0.0, **kwargs):
    """transformers' attention-function signature: query (B, NH, Tq, D), key/value (B, KV, Tk, D),
    an additive mask (B, 1, Tq, Tk) or None; returns (B, Tq, NH, D) and no weights."""
    B, NH, Tq, D = query.shape
    KV, Tk = key.shape[1], key.shape[2]
    G = NH // KV
    q = (query * scaling).reshape(B, KV, G * Tq, D)  # a group's query heads share their key/value head
    scores = torch.matmul(q, key.transpose(2, 3)).view(B, KV, G, Tq, Tk)
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, None, :, :Tk]
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs.view(B, KV, G * Tq, Tk), value)
    return out.view(B, NH, Tq, D).transpose(1, 2).contiguous(), None


def _register_grouped() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(GROUPED, grouped_attention)
    AttentionMaskInterface.register(GROUPED, eager_mask)  # the same additive mask as eager


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def resolve_attention(model, setting: Attention) -> str | None:
    """The kernel to train with: ``auto`` is ``grouped`` for a Llama-family model on CPU,
    ``eager`` for another model on CPU and the model's own elsewhere; ``model`` keeps the
    model's own; None means "leave as it is"."""
    if setting == "model":
        return None
    if setting == "auto":
        p = next(iter(model.parameters()), None)
        if p is None or p.device.type != "cpu":
            return None
        setting = "grouped" if getattr(getattr(model, "config", None), "model_type", None) in GROUPED_MODELS else "eager"
    if setting == "grouped":
        _register_grouped()
        return GROUPED
    return setting


@contextlib.contextmanager
def training_attention(model, setting: Attention = "auto"):
    """Run the block with the training attention kernel, then restore the model's own."""
    base = _base(model)
    want = resolve_attention(base, setting)
    config = getattr(base, "config", None)
    prev = getattr(config, "_attn_implementation", None)
    if want is None or prev is None or want == prev or not hasattr(base, "set_attn_implementation"):
        yield
        return
    base.set_attn_implementation(want)
    try:
        yield
    finally:
        base.set_attn_implementation(prev)
