from tirl.engine.base import Completion, Engine, FinishReason, GenerationRequest, SamplingParams
from tirl.engine.hf import HFEngine, HFEngineConfig

__all__ = ["Completion", "Engine", "FinishReason", "GenerationRequest", "HFEngine", "HFEngineConfig", "SamplingParams"]
