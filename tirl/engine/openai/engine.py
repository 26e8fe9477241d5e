"""OpenAIEngine: generation on any OpenAI-compatible server (vLLM, llama.cpp, SGLang, hosted APIs).

Used for experts, judges and repairers, and to evaluate API models. Two faces:

* the Engine interface — ``generate(requests) -> completions``, token ids in and token ids out,
  through the ``/completions`` endpoint (one HTTP request per generation request);
* a chat helper — ``chat(conversations) -> replies`` (messages in, text out) through
  ``/chat/completions``, for judges and repairers that only need text (``chat.py``).

Both are async inside (``http.py``: httpx with retries, one connection pool, one concurrency
limit shared by every caller) on one private event loop in a daemon thread (``loop.py``).
``generate``/``chat`` are synchronous and may be called from any thread, including from inside a
running event loop; ``agenerate`` (one request, as HFEngine's), ``agenerate_many`` and ``achat``
are awaitable and do not block the caller's loop. A request's ``seed`` is sent as the API's
``seed`` (vLLM samples a seeded request reproducibly; llama-cpp-python's server, in our test,
did not). The engine has no generator of its own, so the agent loop's requests go unseeded.

**Prompt.** The OpenAI API allows a prompt as an array of token ids; vLLM accepts it.
llama.cpp's Python server (``llama_cpp.server``) accepts only text (it answers an array with a
validation error, as HTTP 500). With ``prompt_format="auto"`` the first refusal (HTTP 400 or
422, or any error that names the prompt) switches the engine to text: the prefix is decoded with
special tokens kept, and the server re-tokenises it (parsing special tokens). That is exact only
when the server's tokenizer is the same as ours and the text re-tokenises to the same ids; the
server's ``usage.prompt_tokens`` is compared with the prefix length and every difference is
counted in ``stats.prompt_token_mismatches`` (and warned about once).

What comes back is repaired into tirl's token-level ``Completion`` by ``repair.py`` (sampled ids,
log-probs, finish reasons), and the request bodies, with the sampling fields vLLM and llama.cpp
need to sample what ``SamplingParams`` says, are ``api.py``'s. ``stats`` says which path each
reply took.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx

from tirl.engine.base import Completion, Engine, GenerationRequest, SamplingParams
from tirl.engine.openai.api import completion_body, first_choice
from tirl.engine.openai.chat import CHAT_DEFAULT, chat_all, check_conversations
from tirl.engine.openai.config import OpenAIEngineConfig
from tirl.engine.openai.errors import OpenAIEngineError, snippet
from tirl.engine.openai.http import HTTPClient
from tirl.engine.openai.loop import EngineLoop, gather_or_cancel
from tirl.engine.openai.repair import decode, read_choice
from tirl.engine.openai.stats import OpenAIEngineStats

log = logging.getLogger(__name__)


class OpenAIEngine(Engine):
    """Engine over an OpenAI-compatible HTTP API. ``tokenizer`` must be the server model's
    tokenizer for ``generate``; ``transport`` replaces the network (tests)."""

    async_native = True  # concurrent agenerate calls are concurrent requests, batched by the server

    def __init__(self, config: OpenAIEngineConfig | None = None, tokenizer: Any = None, *, transport: httpx.AsyncBaseTransport | None = None):
        self._loop = EngineLoop()
        self.config = config or OpenAIEngineConfig()
        self.tokenizer = tokenizer
        self.max_context: int | None = None  # the server knows its context; it answers an over-long request with an error
        self.stats = OpenAIEngineStats()
        self._http = HTTPClient(self.config, self.stats, transport)
        self._base = self._http.base
        # "token_ids"/"text" once decided; None while auto has not yet seen the server's answer
        self._prompt_format: str | None = None if self.config.prompt_format == "auto" else self.config.prompt_format
        self._warned_drift = False

    @classmethod
    def from_config(cls, config: OpenAIEngineConfig, tokenizer: Any = None) -> OpenAIEngine:
        """Build from a config section; loads ``config.tokenizer`` when no tokenizer is given."""
        if tokenizer is None and config.tokenizer is not None:
            from transformers import AutoTokenizer

            from tirl.models.load import resolve_model_path

            tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(config.tokenizer))
        return cls(config, tokenizer)

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def tokens_generated(self) -> int:
        return self.stats.tokens_generated

    @property
    def prompt_format(self) -> str | None:
        """How prefixes are sent: "token_ids", "text", or None while auto is undecided."""
        return self._prompt_format

    def close(self) -> None:
        """Close connections and stop the private loop; the engine cannot be used afterwards."""
        self._loop.close(self._http.aclose)

    def __enter__(self) -> OpenAIEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- completions (the Engine interface) ----------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Continue each request's token prefix; blocks until all are done."""
        self._check_requests(requests)
        return self._loop.run(self._generate(list(requests)))

    async def agenerate(self, request: GenerationRequest) -> Completion:
        """One request from a coroutine, as HFEngine's: the agent loop drives each trajectory
        with it, so a trajectory waiting on a tool holds no slot. Does not block the caller's loop."""
        self._check_requests([request])
        return (await self._loop.call(self._generate([request])))[0]

    async def agenerate_many(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """``generate`` for async callers."""
        self._check_requests(requests)
        return await self._loop.call(self._generate(list(requests)))

    def _check_requests(self, requests: Sequence[GenerationRequest]) -> None:
        if self.tokenizer is None:
            raise ValueError("openai engine: generate works on token ids and needs the server model's tokenizer (set the endpoint's tokenizer)")
        for i, r in enumerate(requests):
            if not isinstance(r, GenerationRequest):
                raise TypeError(f"openai engine: request {i} is a {type(r).__name__}, not a GenerationRequest")
            if not r.prefix_ids:
                raise ValueError(f"openai engine: request {i} has an empty prefix")
            if not all(isinstance(t, int) and t >= 0 for t in r.prefix_ids):
                raise ValueError(f"openai engine: request {i}'s prefix must be non-negative int token ids")

    async def _generate(self, reqs: list[GenerationRequest]) -> list[Completion]:
        model = await self._http.model()
        return await gather_or_cancel([self._complete(model, r) for r in reqs])

    async def _complete(self, model: str, req: GenerationRequest) -> Completion:
        sp = req.sampling
        fmt = self._prompt_format or "token_ids"
        prompt: list[int] | str = list(req.prefix_ids) if fmt == "token_ids" else decode(self.tokenizer, req.prefix_ids)
        undecided = self._prompt_format is None
        try:
            data = await self._http.request("POST", "/completions", completion_body(self.config, model, prompt, sp, req.seed), probe=undecided)
        except OpenAIEngineError as e:
            # auto: a server that takes the prompt as text only refuses an id array (vLLM and the
            # OpenAI API accept it; llama.cpp's Python server answers HTTP 500 with a validation error)
            if not undecided or e.status is None or not (e.status in (400, 422) or "prompt" in e.body.lower()):
                raise
            fmt, prompt = "text", decode(self.tokenizer, req.prefix_ids)
            try:
                data = await self._http.request("POST", "/completions", completion_body(self.config, model, prompt, sp, req.seed))
            except OpenAIEngineError as e2:
                raise OpenAIEngineError(
                    f"{e2} (a token-id prompt was refused before: HTTP {e.status}: {snippet(e.body)})", e2.url, e2.status, e2.body
                ) from e2
            if self._prompt_format is None:
                log.info("openai engine: %s refuses token-id prompts (HTTP %s); sending decoded text", self._base, e.status)
        if self._prompt_format is None:
            self._prompt_format = fmt
        url = f"{self._base}/completions"
        choice = first_choice(data, url)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        if fmt == "text" and isinstance(usage.get("prompt_tokens"), int) and usage["prompt_tokens"] != len(req.prefix_ids):
            self.stats.prompt_token_mismatches += 1
            if not self._warned_drift:
                self._warned_drift = True
                log.warning(
                    "openai engine: %s counted %d prompt tokens for a %d-token prefix sent as text; its tokenizer differs "
                    "from ours or the text does not re-tokenise to the same ids (counted in stats.prompt_token_mismatches)",
                    self._base,
                    usage["prompt_tokens"],
                    len(req.prefix_ids),
                )
        comp = read_choice(choice, sp, url, self.tokenizer, self.stats)
        self.stats.tokens_generated += len(comp.token_ids)
        return comp

    # ---- chat (chat.py) ------------------------------------------------------------------

    def chat(self, conversations: Sequence[Sequence[dict[str, str]]], sampling: SamplingParams | None = None) -> list[str]:
        """One reply per conversation (OpenAI ``messages``: dicts with role and content)."""
        convs = check_conversations(conversations)
        return self._loop.run(chat_all(self._http, convs, sampling or CHAT_DEFAULT))

    async def achat(self, conversations: Sequence[Sequence[dict[str, str]]], sampling: SamplingParams | None = None) -> list[str]:
        convs = check_conversations(conversations)
        return await self._loop.call(chat_all(self._http, convs, sampling or CHAT_DEFAULT))

    def ask(self, prompts: Sequence[str], sampling: SamplingParams | None = None) -> list[str]:
        """One user turn per prompt."""
        return self.chat([[{"role": "user", "content": p}] for p in prompts], sampling)
