"""Which attention kernel a training forward/backward uses.

On CPU, torch's fused SDPA kernel (transformers' default ``sdpa``) is fast forward but its
backward is not: profiling tirl's ``policy_update`` on SmolLM2 (16 rows of ~230 tokens, bf16
autocast) put ``_scaled_dot_product_flash_attention_for_cpu_backward`` at 20% of the update,
8x the forward kernel's time, while with transformers' ``eager`` attention (matmul, softmax,
matmul, differentiated by autograd) the whole update ran 1.14x faster on a quiet 2-core AMX
machine and about 1.3x with one thread under load (``bench/train_attention.py``). Generation and no-grad scoring keep the model's own kernel;
only the passes that back-propagate switch, and switch back afterwards.
"""

from __future__ import annotations

import contextlib
from typing import Literal

Attention = Literal["auto", "eager", "sdpa", "model"]


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def resolve_attention(model, setting: Attention) -> str | None:
    """The kernel to train with: ``auto`` is ``eager`` for a model on CPU and the model's own
    elsewhere; ``model`` keeps the model's own; None means "leave as it is"."""
    if setting == "model":
        return None
    if setting == "auto":
        p = next(iter(model.parameters()), None)
        return "eager" if p is not None and p.device.type == "cpu" else None
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
