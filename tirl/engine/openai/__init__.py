"""OpenAIEngine: tirl's Engine (and a chat helper) over any OpenAI-compatible server.

One job per module: ``config`` (the endpoint's settings), ``loop`` (the private event-loop
thread that sync and async callers share), ``http`` (requests with retries), ``api`` (the JSON
bodies sent and the choice read back), ``repair`` (server replies made into token-level
completions), ``chat`` (messages in, text out), ``engine`` (the Engine itself), plus ``errors``
and ``stats``. docs/DESIGN.md (Engines) says where it is used.
"""

from tirl.engine.openai.config import OpenAIEngineConfig
from tirl.engine.openai.engine import OpenAIEngine
from tirl.engine.openai.errors import OpenAIEngineError
from tirl.engine.openai.stats import OpenAIEngineStats

__all__ = ["OpenAIEngine", "OpenAIEngineConfig", "OpenAIEngineError", "OpenAIEngineStats"]
