"""The ``optim`` section: optimiser, schedule, micro-batching and precision of the policy update
(``tirl.train.update``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tirl.config.base import Section


class OptimConfig(Section):
    lr: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    grad_clip: float = Field(1.0, gt=0)
    micro_batch_size: int = Field(16, ge=1)
    """Most rows per forward/backward; gradients accumulate over the whole batch."""
    micro_batch_tokens: int = Field(2560, ge=1)
    """Most tokens one forward/backward runs (rows x the longest, padding included; a task's
    shared prompt counted once): what bounds a pass's memory, whatever the row lengths. Larger
    passes run faster on CPU up to a point (bigger matrices, fewer per-pass weight casts); each
    pass keeps its activations and attention scores for the backward pass, about 2 MB per token
    for SmolLM2-135M, so memory bounds it. Speed and peak memory per setting:
    docs/BENCHMARKS.md, "tirl vs TRL" (bench/update_layout.py, bench/update_memory.py)."""
    activation_checkpointing: bool = False
    """Keep only each decoder layer's input during a pass that back-propagates and recompute the
    rest in the backward pass (``tirl.models.checkpointing``): a pass's activations shrink from
    about 2 MB to a few hundred kB per token for SmolLM2-135M, for one more forward pass per
    update. Same gradients. Measured memory: docs/BENCHMARKS.md, "Memory" (bench/update_memory.py);
    its time cost is not measured yet, and an SFT stage with it ran far slower than expected there."""
    share_prefix: bool = True
    """Run the prompt a micro-batch's rows share once (a task's rows are batched together): the
    same log-probs and gradient as running it per row, at a fraction of the cost."""
    bf16: bool | None = None
    """bf16 autocast for forward/backward (master weights stay fp32); None (auto): only where
    the CPU has native bf16 arithmetic (AVX512-BF16/AMX) — elsewhere fp32 is about 3x faster."""
    attention: Literal["auto", "grouped", "eager", "sdpa", "model"] = "auto"
    """Attention kernel of the passes that back-propagate (policy update, SFT): auto = on CPU,
    grouped (eager without copying key/value heads per query head) for Llama-family models and
    eager for others (torch's fused SDPA backward is slow there; ``tirl.models.attention``), the
    model's own elsewhere; model = never switch."""
