"""The engine interface: token ids in, sampled token ids (with log-probs and entropies) out.

Every engine (in-process HF, vLLM, a remote OpenAI-compatible server) implements
``generate(requests) -> completions``. A request is a token prefix: it may be a prompt or an
existing trajectory to extend, which is how multi-turn rollouts and tree branching continue
without ever re-rendering text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol, Sequence


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``top_k=0`` and ``top_p=1.0`` disable those filters; ``temperature=0``
    is greedy decoding."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()  # in addition to the tokenizer's EOS

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"sampling.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"sampling.top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")


class FinishReason(str, enum.Enum):
    STOP_STRING = "stop_string"
    EOS = "eos"
    LENGTH = "length"


@dataclass
class GenerationRequest:
    prefix_ids: list[int]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    seed: int | None = None
    """Seed of this request's own sampling stream: its tokens then do not depend on what else
    is batched with it or when it is scheduled (engines that cannot honour it ignore it)."""


@dataclass
class Completion:
    """One continuation. ``logprobs[i]`` is log p(token_ids[i]) under the distribution it was
    sampled from (after temperature / top-k / top-p); ``entropy[i]`` that distribution's entropy."""

    token_ids: list[int]
    logprobs: list[float]
    entropy: list[float]
    finish_reason: FinishReason
    stop_string: str | None = None  # which stop string ended it


class Engine(Protocol):
    tokenizer: object
    max_context: int | None
    """Tokens the model attends to (prompt + continuation); None when the engine cannot tell
    (a remote server). The agent loop stops a trajectory that fills it."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]: ...
