"""The settings of one OpenAI-compatible endpoint: the ``endpoints.<name>`` config section, which
lives in ``tirl.config.endpoints`` (config imports nothing of the engine); re-exported here."""

from tirl.config.endpoints import OpenAIEngineConfig

__all__ = ["OpenAIEngineConfig"]
