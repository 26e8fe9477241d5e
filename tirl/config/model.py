"""The ``model`` section: which model the policy is, and whether LoRA trains it."""

from __future__ import annotations

from pydantic import Field

from tirl.config.base import Section


class LoraConfig(Section):
    enabled: bool = False
    """Train a LoRA adapter instead of all weights (PEFT). The KL reference is then the base
    model with the adapter disabled, at no extra memory."""
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ModelConfig(Section):
    name: str = "smollm2-135m-instruct"
    """Alias (smollm2-135m-instruct, tiny-random), local directory, hub id, or a finished run
    directory (its final_model)."""
    lora: LoraConfig = LoraConfig()
