"""The settings of one OpenAI-compatible endpoint (``endpoints.<name>`` in the config).

Plain pydantic, no HTTP: the config tree reads it without starting anything.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class OpenAIEngineConfig(BaseModel):
    """One OpenAI-compatible endpoint (an expert, judge or repairer, or an API model to evaluate)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base_url: str = "http://127.0.0.1:8000/v1"
    """Root of the API including the version, e.g. ``http://127.0.0.1:8000/v1``; requests go to
    ``{base_url}/completions`` and ``{base_url}/chat/completions``."""
    model: str | None = None
    """Model name sent with every request; None: the first model the server lists at ``/models``."""
    api_key_env: str | None = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (sent as a Bearer token); the key
    itself never goes into a config. Unset variable or None: no key (local servers)."""
    tokenizer: str | None = None
    """Model alias, directory or hub id whose tokenizer is the server model's; ``generate``
    (token ids in and out) needs it, ``chat`` does not."""
    max_concurrency: int = Field(8, ge=1)
    """Requests in flight at once (shared by every caller of this engine)."""
    timeout_s: float = Field(120.0, gt=0)
    """Limit on one HTTP attempt, connection to last byte."""
    max_retries: int = Field(3, ge=0)
    """Further attempts after a connection error, timeout, HTTP 429 or 5xx."""
    backoff_s: float = Field(0.5, ge=0)
    """Wait before the first retry; doubled for each further one (capped at 30 s, with jitter)."""
    prompt_format: Literal["auto", "token_ids", "text"] = "auto"
    """How ``generate`` sends a prefix: token ids (exact), decoded text (the server re-tokenises),
    or auto: token ids until the server refuses them once, then text."""
    logprobs: bool = True
    """Ask for per-token log-probs (also how llama.cpp reveals the sampled tokens). Off, llama.cpp's
    completions are re-tokenised text; on, its Python server sorts the whole vocabulary per token,
    which cost 2-6x in throughput here (docs/BENCHMARKS.md)."""
    sampling_extensions: bool = True
    """Send the non-OpenAI sampling fields of vLLM and llama.cpp (top_k, min_p, repetition
    penalties, stop_token_ids, token ids in log-probs) so the server samples as asked; turn off
    for servers that reject unknown fields."""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v
