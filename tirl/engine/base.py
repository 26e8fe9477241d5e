"""The engine interface: token ids in, sampled token ids (with log-probs and entropies) out.

Every engine (in-process HF, vLLM, a remote OpenAI-compatible server) implements
``generate(requests) -> completions``. A request is a token prefix: it may be a prompt or an
existing trajectory to extend, which is how multi-turn rollouts and tree branching continue
without ever re-rendering text.

``Engine`` is the whole interface: every member a caller uses is declared here, so callers call
them and never probe for them (docs/DESIGN.md, Engines). Members an engine may have nothing to
do for (no weights of its own to sync, no generator to draw seeds from, nothing to close) have
defaults here; an engine overrides what it does.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


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


@dataclass(frozen=True)
class EngineCounters:
    """An engine's cumulative work since it was built (the trainer and ``tirl bench rollout`` log
    differences). None: the engine does not count it."""

    tokens_generated: int = 0
    prefill_tokens: int | None = None  # prefix tokens run through the model
    prefix_tokens_reused: int | None = None  # prefix tokens served from a prefix cache instead
    prefix_tokens_recomputed: int | None = None  # prefill tokens the engine had computed before (since the last weight change)
    weight_syncs: int | None = None


@dataclass
class EngineMemory:
    """What an engine holds in memory beside the model, in bytes (None: not held or not known).
    The trainer logs it each step (``mem/engine_*``) so a run's peak can be told apart by part."""

    weights_copy: int | None = None  # the engine's own copy of the weights (fast-path layout)
    kv_cache: int | None = None  # keys/values of the rows being decoded, as allocated
    prefix_store: int | None = None  # keys/values kept for later requests, now
    prefix_store_peak: int | None = None  # and at most since the last ``memory(reset_peak=True)``


class Engine(abc.ABC):
    """What every engine offers. A class, not a structural ``Protocol``: engines (test fakes
    included) subclass it to inherit the defaults, and callers that take either an engine or
    something else (``tirl.curate.repair``: an engine or an expert source) tell them apart with
    ``isinstance``."""

    tokenizer: Any
    """The tokenizer of the model's token ids (None: an engine that only chats, see OpenAIEngine)."""
    max_context: int | None = None
    """Tokens the model attends to (prompt + continuation); None when the engine cannot tell
    (a remote server). The agent loop stops a trajectory that fills it."""
    async_native: bool = False
    """True: ``agenerate`` is the engine's own asynchronous path (HFEngine's and vLLM's concurrent
    calls join one running batch, OpenAIEngine's go to the server concurrently), so the agent loop
    drives each trajectory on its own and one waiting on a tool holds no slot. False: the loop
    batches one turn of every live trajectory into one ``generate`` call."""
    generator: torch.Generator | None = None
    """The engine's sampling generator, which the trainer checkpoints and reseeds for evaluation;
    None: the engine has none (a server samples with its own)."""
    tokens_generated: int
    """Tokens sampled since the engine was built."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Continue each request's prefix; blocks until all are done."""

    async def agenerate(self, request: GenerationRequest) -> Completion:
        """One request from a coroutine. This default runs it alone through ``generate`` (and
        blocks the caller's loop meanwhile), which is why the agent loop uses ``generate`` rounds
        for an engine that is not ``async_native``."""
        return self.generate([request])[0]

    def draw_seed(self) -> int | None:
        """A seed from the engine's generator, from which the agent loop derives per-request
        seeds; None without a generator (requests then go unseeded). An engine that cannot
        honour a request's seed ignores it (``GenerationRequest.seed``)."""
        if self.generator is None:
            return None
        import torch  # here, not at the top: an engine without a generator (a server) needs no torch

        return int(torch.randint(0, 2**62, (1,), generator=self.generator))

    def counters(self) -> EngineCounters:
        """Cumulative work counters; this default counts sampled tokens only."""
        return EngineCounters(tokens_generated=self.tokens_generated)

    def memory(self, reset_peak: bool = False) -> EngineMemory:
        """Bytes the engine holds beside the model; ``reset_peak`` starts a new peak window."""
        return EngineMemory()

    def free_cache(self) -> None:
        """Give back the memory of cached keys/values while the engine is idle (the trainer calls
        it before an update, whose new weights make them stale anyway). Nothing by default."""

    def sync_weights(self) -> None:
        """Make the engine sample from the model's current weights. Nothing to do by default: a
        remote engine's weights are the server's, and an engine that runs the live model's own
        forward sees every update. Engines that copy the weights (HFEngine's fast path, vLLM)
        also do it themselves when the parameters changed in place, so the trainer need not call it."""

    def close(self) -> None:
        """Release what the engine holds (threads, connections, a vLLM core); nothing by default."""
