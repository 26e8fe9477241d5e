from tirl.engine.base import Completion, Engine, EngineCounters, EngineMemory, FinishReason, GenerationRequest, SamplingParams
from tirl.engine.hf import HFEngine, HFEngineConfig
from tirl.engine.openai import OpenAIEngine, OpenAIEngineConfig, OpenAIEngineError

__all__ = [
    "Completion",
    "Engine",
    "EngineCounters",
    "EngineMemory",
    "FinishReason",
    "GenerationRequest",
    "HFEngine",
    "HFEngineConfig",
    "OpenAIEngine",
    "OpenAIEngineConfig",
    "OpenAIEngineError",
    "SamplingParams",
]
