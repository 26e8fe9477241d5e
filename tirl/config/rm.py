"""The ``rm`` section: training a trajectory reward model (``tirl rm train``, ``tirl.rm``)."""

from __future__ import annotations

from pydantic import Field

from tirl.config.base import Section


class RMConfig(Section):
    """Trajectory reward model training (``tirl rm train``; ALGORITHMS.md §7, AutoTraj's
    LLaMA-Factory ``stage: rm`` settings): a scalar head on the base model, LoRA, Bradley-Terry."""

    model: str | None = None
    """Base model; None: model.name (the policy's base)."""
    pairs: str | None = None
    """Preference pairs JSONL (``tirl repair`` writes one: prompt, chosen, rejected)."""
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lr: float = Field(1e-5, gt=0)
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(8, ge=1)
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    """Held-out share of the pairs for pairwise accuracy."""
    max_tokens: int = Field(1024, ge=8)
    """Rendered pairs are cut to their last max_tokens tokens (the answer is at the end)."""
