"""The counters of an OpenAIEngine (``engine.stats``): the HTTP client, the reply repairs and
the engine itself count into this one record."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class OpenAIEngineStats:
    """What happened so far; the drift counters say how exact the returned tokens are."""

    requests: int = 0  # HTTP requests answered with success
    retries: int = 0  # attempts repeated after a transient failure
    tokens_generated: int = 0
    prompt_token_mismatches: int = 0  # text prompts the server counted differently from the prefix
    retokenised: int = 0  # completions whose ids come from re-tokenising text (sampled ids unknown)
    unknown_finish: int = 0  # finish reasons outside the OpenAI API's, read as EOS
