"""The policy engine a config names: ``engine.backend`` picks tirl's HFEngine or in-process vLLM.

vLLM is an optional extra: nothing here imports it unless ``backend`` is ``vllm``. The section
itself (``EngineConfig``) lives in ``tirl.config.engine`` and is re-exported here for callers
that build an engine by hand.
"""

from __future__ import annotations

from tirl.config.engine import EngineConfig
from tirl.engine.hf import HFEngine

__all__ = ["EngineConfig", "build_engine"]


def build_engine(config: EngineConfig, model, tokenizer):
    """The configured engine over the live ``model`` (rollouts sample from its current weights)."""
    if config.backend == "vllm":
        from tirl.engine.vllm_engine import VLLMEngine

        return VLLMEngine(model, tokenizer, config)
    return HFEngine(model, tokenizer, config)
