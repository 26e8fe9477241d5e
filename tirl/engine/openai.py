"""OpenAIEngine: generation on any OpenAI-compatible server (vLLM, llama.cpp, SGLang, hosted APIs).

Used for experts, judges and repairers, and to evaluate API models. Two faces:

* the Engine interface — ``generate(requests) -> completions``, token ids in and token ids out,
  through the ``/completions`` endpoint (one HTTP request per generation request);
* a chat helper — ``chat(conversations) -> replies`` (messages in, text out) through
  ``/chat/completions``, for judges and repairers that only need text.

Both are async inside (httpx, one private event loop in a daemon thread, one connection pool,
one concurrency limit shared by every caller). ``generate``/``chat`` are synchronous and may be
called from any thread, including from inside a running event loop (the agent loop calls
``engine.generate`` from a coroutine, as it does with HFEngine; the calling thread waits);
``agenerate`` (one request, as HFEngine's), ``agenerate_many`` and ``achat`` are awaitable and do
not block the caller's loop. A request's ``seed`` is sent as the API's ``seed`` (vLLM samples a
seeded request reproducibly; llama-cpp-python's server, in our test, did not).

Every request is retried with exponential backoff (and jitter; ``Retry-After`` is honoured) on
connection errors, timeouts, HTTP 429 and 5xx; any other HTTP error fails at once. Errors are
``OpenAIEngineError`` and name the URL, the HTTP status and the start of the server's reply.

What servers return differs, and the engine says which path it took (``stats``):

* **Prompt.** The OpenAI API allows a prompt as an array of token ids; vLLM accepts it.
  llama.cpp's Python server (``llama_cpp.server``) accepts only text (it answers an array with
  a validation error, as HTTP 500). With ``prompt_format="auto"`` the first refusal (HTTP 400 or
  422, or any error that names the prompt) switches the engine to text: the prefix is
  decoded with special tokens kept, and the server re-tokenises it (parsing special tokens).
  That is exact only when the server's tokenizer is the same as ours and the text re-tokenises
  to the same ids; the server's ``usage.prompt_tokens`` is compared with the prefix length and
  every difference is counted in ``stats.prompt_token_mismatches`` (and warned about once).
* **Sampled tokens.** vLLM returns token ids (``return_tokens_as_token_ids``: ``"token_id:N"``)
  — exact. llama.cpp returns each sampled token as text (``logprobs.tokens``); each piece is
  mapped back to the one id that decodes to it, which recovers the sampled ids exactly when
  every piece is one whole token of our tokenizer. When a piece does not map (a multi-byte
  character split across tokens, which llama.cpp drops), or the server sent no logprobs, the
  text is re-tokenised with our tokenizer: the ids are then a canonical tokenisation, not
  necessarily the sampled one, and the log-probs are unknown (NaN). Counted in
  ``stats.retokenised``.
* **Log-probs** are the server's: llama.cpp and vLLM report the model's raw distribution
  (temperature 1, no top-k/top-p), not the filtered one tirl's own engines report; they agree
  when sampling at temperature 1 without filters. Entropies are never returned (NaN).
* **Finish reasons.** ``length`` → LENGTH. ``stop`` is EOS or a stop string; the OpenAI API
  does not say which. vLLM's ``stop_reason`` says it; llama.cpp's log-probs cover the stop
  string's tokens although its text is cut before the stop string, which shows which one hit.
  A stop string ends the completion like in HFEngine: its tokens are part of the completion.
  On EOS the tokenizer's EOS id is appended (logprob NaN) unless the server already returned it;
  a server that stops on several end tokens (SmolLM2: ``<|im_end|>``, ``<|endoftext|>``) does not
  say which it sampled, so the appended id may differ from the sampled one.
  ``stop_token_ids`` are sent as vLLM's extension and also enforced here on the returned ids.
* **Sampling.** llama.cpp's server defaults (top_k 40, min_p 0.05, repeat penalty 1.1) differ
  from tirl's; with ``sampling_extensions`` (default) the engine sends top_k, min_p=0 and
  neutral repetition penalties so the server samples what ``SamplingParams`` says. Strict
  servers that reject unknown fields (the hosted OpenAI API) need it off.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import os
import random
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import httpx

from tirl.config.endpoints import OpenAIEngineConfig
from tirl.engine.base import Completion, FinishReason, GenerationRequest, SamplingParams

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 30.0
_RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx
_NAN = float("nan")


class OpenAIEngineError(RuntimeError):
    """A request to an OpenAI-compatible server failed; the message names the URL, the HTTP
    status (when there was a reply) and the start of the server's reply."""

    def __init__(self, message: str, url: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.url = url
        self.status = status
        self.body = body


@dataclass
class OpenAIEngineStats:
    """What happened so far; the drift counters say how exact the returned tokens are."""

    requests: int = 0  # HTTP requests answered with success
    retries: int = 0  # attempts repeated after a transient failure
    tokens_generated: int = 0
    prompt_token_mismatches: int = 0  # text prompts the server counted differently from the prefix
    retokenised: int = 0  # completions whose ids come from re-tokenising text (sampled ids unknown)
    unknown_finish: int = 0  # finish reasons outside the OpenAI API's, read as EOS


class _LoopThread:
    """A private event loop in a daemon thread: the httpx client, the semaphore and the cached
    server facts live on it, so sync callers from any thread share one pool and one limit."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tirl-openai-engine", daemon=True)
        self.thread.start()

    def submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class OpenAIEngine:
    """Engine over an OpenAI-compatible HTTP API. ``tokenizer`` must be the server model's
    tokenizer for ``generate``; ``transport`` replaces the network (tests)."""

    def __init__(self, config: OpenAIEngineConfig | None = None, tokenizer: Any = None, *, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config or OpenAIEngineConfig()
        self.tokenizer = tokenizer
        self.max_context: int | None = None  # the server knows its context; it answers an over-long request with an error
        self.stats = OpenAIEngineStats()
        self._transport = transport
        self._base = self.config.base_url.rstrip("/")
        # "token_ids"/"text" once decided; None while auto has not yet seen the server's answer
        self._prompt_format: str | None = None if self.config.prompt_format == "auto" else self.config.prompt_format
        self._model: str | None = self.config.model
        self._warned_drift = False
        self._runner: _LoopThread | None = None
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._model_lock: asyncio.Lock | None = None
        self._closed = False
        self._start_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: OpenAIEngineConfig, tokenizer: Any = None) -> "OpenAIEngine":
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
        with self._start_lock:
            self._closed = True
            runner, self._runner = self._runner, None
        if runner is None:
            return
        if threading.current_thread() is runner.thread:
            runner.loop.stop()  # closing from inside the loop: no waiting on ourselves
            return
        if self._client is not None:
            try:
                runner.submit(self._client.aclose()).result(timeout=5)
            except Exception:  # noqa: BLE001 - closing is best effort; the loop goes away anyway
                pass
        runner.stop()

    def __enter__(self) -> "OpenAIEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # a forgotten engine must not leave its thread behind; no waiting here (this may run on
        # any thread, the engine's own included)
        runner = getattr(self, "_runner", None)
        if runner is not None and runner.loop.is_running():
            runner.loop.call_soon_threadsafe(runner.loop.stop)

    def _loop(self) -> _LoopThread:
        with self._start_lock:
            if self._closed:
                raise RuntimeError("openai engine: used after close()")
            if self._runner is None:
                self._runner = _LoopThread()
            return self._runner

    def _run(self, coro):
        try:
            runner = self._loop()
        except BaseException:
            coro.close()
            raise
        if threading.current_thread() is runner.thread:
            coro.close()
            raise RuntimeError("openai engine: a sync call from the engine's own event loop would deadlock; await agenerate/achat instead")
        fut = runner.submit(coro)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()  # e.g. KeyboardInterrupt: stop the requests still in flight
            raise

    async def _call(self, coro):
        """Run ``coro`` on the engine's loop and await it from the caller's loop."""
        try:
            runner = self._loop()
        except BaseException:
            coro.close()
            raise
        if threading.current_thread() is runner.thread:
            return await coro
        return await asyncio.wrap_future(runner.submit(coro))

    def _ensure_client(self) -> httpx.AsyncClient:
        # runs on the engine's loop: the client, semaphore and lock belong to it
        if self._client is None:
            limits = httpx.Limits(max_connections=self.config.max_concurrency, max_keepalive_connections=self.config.max_concurrency)
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.config.timeout_s), limits=limits, transport=self._transport)
            self._sem = asyncio.Semaphore(self.config.max_concurrency)
            self._model_lock = asyncio.Lock()
        return self._client

    # ---- HTTP ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        env = self.config.api_key_env
        key = os.environ.get(env) if env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 2 * _MAX_BACKOFF_S)
        base = min(self.config.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)
        return base * (0.5 + random.random() / 2)  # jitter: concurrent retries do not arrive together

    async def _request(self, method: str, path: str, body: dict | None = None, probe: bool = False) -> dict:
        """One API call with retries. ``probe``: a reply that complains about the prompt fails at
        once whatever its status (llama.cpp's server answers a validation error with HTTP 500)."""
        client = self._ensure_client()
        assert self._sem is not None
        url = f"{self._base}{path}"
        last, last_status = "", None
        retry_after: float | None = None
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            if attempt:
                self.stats.retries += 1
                await asyncio.sleep(self._backoff(attempt, retry_after))
            retry_after, last_status = None, None
            try:
                # a slot is held only while a request is in flight, not while backing off
                async with self._sem:
                    async with asyncio.timeout(self.config.timeout_s):
                        resp = await client.request(method, url, json=body, headers=self._headers())
            except (TimeoutError, httpx.TimeoutException):
                last = f"no response within timeout_s={self.config.timeout_s:g} s"
                continue
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e or 'connection failed'}"
                continue
            status = resp.status_code
            if probe and status >= 400 and "prompt" in resp.text.lower():
                raise OpenAIEngineError(f"{method} {url}: HTTP {status}: {_snippet(resp.text)}", url, status, resp.text)
            if status >= 500 and "validation error" in resp.text.lower():
                # llama.cpp's server reports a malformed request as HTTP 500: retrying cannot help
                raise OpenAIEngineError(f"{method} {url}: HTTP {status} (the server rejected the request): {_snippet(resp.text)}", url, status, resp.text)
            if status in _RETRY_STATUS or status >= 500:
                last, last_status = f"HTTP {status}: {_snippet(resp.text)}", status
                retry_after = _retry_after(resp.headers.get("retry-after"))
                continue
            if status >= 400:
                hint = ""
                if status in (401, 403):
                    env = self.config.api_key_env
                    hint = f" (check the API key; it is read from ${env}{', which is not set' if env and not os.environ.get(env) else ''})" if env else " (no API key is configured: api_key_env is None)"
                elif status == 404:
                    hint = f" (is base_url={self.config.base_url!r} the API root, including /v1?)"
                raise OpenAIEngineError(f"{method} {url}: HTTP {status}{hint}: {_snippet(resp.text)}", url, status, resp.text)
            try:
                data = resp.json()
            except ValueError:
                raise OpenAIEngineError(f"{method} {url}: HTTP {status} but the reply is not JSON: {_snippet(resp.text)}", url, status, resp.text) from None
            if not isinstance(data, dict):
                raise OpenAIEngineError(f"{method} {url}: expected a JSON object, got {_snippet(resp.text)}", url, status, resp.text)
            self.stats.requests += 1
            return data
        raise OpenAIEngineError(f"{method} {url}: gave up after {attempts} attempt(s); last error: {last}", url, last_status)

    async def _resolve_model(self) -> str:
        self._ensure_client()
        assert self._model_lock is not None
        async with self._model_lock:
            if self._model is None:
                data = await self._request("GET", "/models")
                models = data.get("data")
                if not isinstance(models, list) or not models or not isinstance(models[0], dict) or "id" not in models[0]:
                    raise OpenAIEngineError(f"GET {self._base}/models lists no model; set the endpoint's model", f"{self._base}/models")
                self._model = str(models[0]["id"])
            return self._model

    # ---- completions (the Engine interface) ----------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Continue each request's token prefix; blocks until all are done."""
        self._check_requests(requests)
        return self._run(self._generate(list(requests)))

    async def agenerate(self, request: GenerationRequest) -> Completion:
        """One request from a coroutine, as HFEngine's: the agent loop drives each trajectory
        with it, so a trajectory waiting on a tool holds no slot. Does not block the caller's loop."""
        self._check_requests([request])
        return (await self._call(self._generate([request])))[0]

    async def agenerate_many(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """``generate`` for async callers."""
        self._check_requests(requests)
        return await self._call(self._generate(list(requests)))

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
        model = await self._resolve_model()
        return await _gather_or_cancel([self._complete(model, r) for r in reqs])

    def _completion_body(self, model: str, prompt: list[int] | str, sp: SamplingParams, seed: int | None) -> dict:
        body: dict[str, Any] = {"model": model, "prompt": prompt, "max_tokens": sp.max_new_tokens, "temperature": sp.temperature, "top_p": sp.top_p, "n": 1, "stream": False}
        if seed is not None:
            body["seed"] = seed % 2**31  # llama.cpp's sampler seed is 32-bit; tirl's seeds are 62-bit
        if sp.stop_strings:
            body["stop"] = list(sp.stop_strings)
        if self.config.logprobs:
            body["logprobs"] = 0  # the sampled token's log-prob; no alternatives
        if self.config.sampling_extensions:
            body.update(_sampling_extensions(sp))
            # vLLM: report ids, keep special tokens and the stop string, so nothing is re-tokenised
            body.update({"return_tokens_as_token_ids": True, "skip_special_tokens": False, "include_stop_str_in_output": True})
            if sp.stop_token_ids:
                body["stop_token_ids"] = list(sp.stop_token_ids)
        elif sp.top_k:
            raise ValueError("openai engine: top_k is not part of the OpenAI API; enable sampling_extensions for a server that supports it")
        return body

    async def _complete(self, model: str, req: GenerationRequest) -> Completion:
        sp = req.sampling
        fmt = self._prompt_format or "token_ids"
        prompt: list[int] | str = list(req.prefix_ids) if fmt == "token_ids" else self._detokenise(req.prefix_ids)
        undecided = self._prompt_format is None
        try:
            data = await self._request("POST", "/completions", self._completion_body(model, prompt, sp, req.seed), probe=undecided)
        except OpenAIEngineError as e:
            # auto: a server that takes the prompt as text only refuses an id array (vLLM and the
            # OpenAI API accept it; llama.cpp's Python server answers HTTP 500 with a validation error)
            if not undecided or e.status is None or not (e.status in (400, 422) or "prompt" in e.body.lower()):
                raise
            fmt, prompt = "text", self._detokenise(req.prefix_ids)
            try:
                data = await self._request("POST", "/completions", self._completion_body(model, prompt, sp, req.seed))
            except OpenAIEngineError as e2:
                raise OpenAIEngineError(f"{e2} (a token-id prompt was refused before: HTTP {e.status}: {_snippet(e.body)})", e2.url, e2.status, e2.body) from e2
            if self._prompt_format is None:
                log.info("openai engine: %s refuses token-id prompts (HTTP %s); sending decoded text", self._base, e.status)
        if self._prompt_format is None:
            self._prompt_format = fmt
        url = f"{self._base}/completions"
        choice = _first_choice(data, url)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        if fmt == "text" and isinstance(usage.get("prompt_tokens"), int) and usage["prompt_tokens"] != len(req.prefix_ids):
            self.stats.prompt_token_mismatches += 1
            if not self._warned_drift:
                self._warned_drift = True
                log.warning(
                    "openai engine: %s counted %d prompt tokens for a %d-token prefix sent as text; its tokenizer differs "
                    "from ours or the text does not re-tokenise to the same ids (counted in stats.prompt_token_mismatches)",
                    self._base, usage["prompt_tokens"], len(req.prefix_ids),
                )
        comp = self._parse_choice(choice, sp, url)
        self.stats.tokens_generated += len(comp.token_ids)
        return comp

    def _detokenise(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def _eos_ids(self) -> set[int]:
        eos = getattr(self.tokenizer, "eos_token_id", None)
        return {eos} if isinstance(eos, int) else set()

    def _piece_ids(self, pieces: list[Any]) -> list[int] | None:
        """Sampled ids from ``logprobs.tokens``: vLLM's ``token_id:N`` or one whole token's text
        per piece (llama.cpp). None when any piece is not exactly one token of our tokenizer."""
        ids: list[int] = []
        for p in pieces:
            if not isinstance(p, str):
                return None
            if p.startswith("token_id:") and p[9:].isdigit():
                ids.append(int(p[9:]))
                continue
            enc = self._encode(p)
            if len(enc) != 1 or self._detokenise(enc) != p:
                return None
            ids.append(enc[0])
        return ids

    def _parse_choice(self, choice: dict, sp: SamplingParams, url: str) -> Completion:
        text = choice.get("text")
        if not isinstance(text, str):
            raise OpenAIEngineError(f"POST {url}: a choice without text: {_snippet(str(choice))}", url)
        lp = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else {}
        pieces = lp.get("tokens") if isinstance(lp.get("tokens"), list) else None
        raw_lps = lp.get("token_logprobs") if isinstance(lp.get("token_logprobs"), list) else None
        ids = self._piece_ids(pieces) if pieces else None
        logprobs: list[float] = []
        if ids is not None:
            logprobs = [float(x) if isinstance(x, (int, float)) else _NAN for x in (raw_lps or [])]
            if len(logprobs) != len(ids):
                logprobs = [_NAN] * len(ids)
        # the text of every sampled token: it goes on through a stop string the server cut off
        if pieces and all(isinstance(p, str) for p in pieces):
            sampled_text = self._detokenise(ids) if ids is not None and any(p.startswith("token_id:") for p in pieces) else "".join(pieces)
        else:
            sampled_text = text

        finish, stop_hit = self._finish(choice, text, sampled_text, sp)
        if ids is None:
            # no sampled ids: tokenise what was generated, putting back the stop string the server cut
            full = text + stop_hit if stop_hit is not None and not text.endswith(stop_hit) else text
            ids = self._encode(full)
            logprobs = [_NAN] * len(ids)
            self.stats.retokenised += 1

        # stop_token_ids: vLLM honours them; a server that does not is cut here
        if sp.stop_token_ids:
            stops = set(sp.stop_token_ids)
            cut = next((i for i, t in enumerate(ids) if t in stops), None)
            if cut is not None:
                ids, logprobs, finish, stop_hit = ids[: cut + 1], logprobs[: cut + 1], FinishReason.EOS, None
        if finish is FinishReason.EOS:
            eos = self._eos_ids()
            if eos and not (ids and (ids[-1] in eos or ids[-1] in sp.stop_token_ids)):
                # like HFEngine, the completion ends with the EOS token the model sampled
                ids, logprobs = ids + [min(eos)], logprobs + [_NAN]
        return Completion(token_ids=ids, logprobs=logprobs, entropy=[_NAN] * len(ids), finish_reason=finish, stop_string=stop_hit)

    def _finish(self, choice: dict, text: str, sampled_text: str, sp: SamplingParams) -> tuple[FinishReason, str | None]:
        reason = choice.get("finish_reason")
        if reason == "length":
            return FinishReason.LENGTH, None
        if reason != "stop":
            self.stats.unknown_finish += 1
            return FinishReason.EOS, None
        stop_reason = choice.get("stop_reason")  # vLLM: the stop string, a stop token id or None (EOS)
        if isinstance(stop_reason, str) and stop_reason in sp.stop_strings:
            return FinishReason.STOP_STRING, stop_reason
        if "stop_reason" in choice and not isinstance(stop_reason, str):
            return FinishReason.EOS, None
        for s in sp.stop_strings:  # servers that keep the stop string in the text
            if s and text.endswith(s):
                return FinishReason.STOP_STRING, s
        # llama.cpp cuts the text before the stop string but its sampled tokens go on through it
        if sampled_text != text:
            rest = sampled_text[len(text):] if sampled_text.startswith(text) else sampled_text
            hits = [(rest.find(s), i, s) for i, s in enumerate(sp.stop_strings) if s and s in rest]
            if hits:
                return FinishReason.STOP_STRING, min(hits)[2]
        return FinishReason.EOS, None

    # ---- chat ------------------------------------------------------------------------------

    def chat(self, conversations: Sequence[Sequence[dict[str, str]]], sampling: SamplingParams | None = None) -> list[str]:
        """One reply per conversation (OpenAI ``messages``: dicts with role and content)."""
        convs = _check_conversations(conversations)
        return self._run(self._chat(convs, sampling or _CHAT_DEFAULT))

    async def achat(self, conversations: Sequence[Sequence[dict[str, str]]], sampling: SamplingParams | None = None) -> list[str]:
        convs = _check_conversations(conversations)
        return await self._call(self._chat(convs, sampling or _CHAT_DEFAULT))

    def ask(self, prompts: Sequence[str], sampling: SamplingParams | None = None) -> list[str]:
        """One user turn per prompt."""
        return self.chat([[{"role": "user", "content": p}] for p in prompts], sampling)

    async def _chat(self, convs: list[list[dict[str, str]]], sp: SamplingParams) -> list[str]:
        model = await self._resolve_model()
        return await _gather_or_cancel([self._chat_one(model, c, sp) for c in convs])

    async def _chat_one(self, model: str, messages: list[dict[str, str]], sp: SamplingParams) -> str:
        body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": sp.max_new_tokens, "temperature": sp.temperature, "top_p": sp.top_p, "n": 1, "stream": False}
        if sp.stop_strings:
            body["stop"] = list(sp.stop_strings)
        if self.config.sampling_extensions:
            body.update(_sampling_extensions(sp))
        elif sp.top_k:
            raise ValueError("openai engine: top_k is not part of the OpenAI API; enable sampling_extensions for a server that supports it")
        data = await self._request("POST", "/chat/completions", body)
        url = f"{self._base}/chat/completions"
        msg = _first_choice(data, url).get("message")
        if not isinstance(msg, dict):
            raise OpenAIEngineError(f"POST {url}: a choice without a message: {_snippet(str(data))}", url)
        content = msg.get("content")
        if content is not None and not isinstance(content, str):
            raise OpenAIEngineError(f"POST {url}: message content is not text: {_snippet(str(content))}", url)
        return content or ""


_CHAT_DEFAULT = SamplingParams(temperature=0.0, max_new_tokens=512)  # judges answer deterministically by default


def _sampling_extensions(sp: SamplingParams) -> dict[str, Any]:
    # top_k 0 disables the filter in llama.cpp (which rejects -1) and in current vLLM
    return {"top_k": sp.top_k, "min_p": 0.0, "repeat_penalty": 1.0, "repetition_penalty": 1.0}


def _check_conversations(conversations: Sequence[Sequence[dict[str, str]]]) -> list[list[dict[str, str]]]:
    out = []
    for i, conv in enumerate(conversations):
        if isinstance(conv, (str, bytes)) or not conv:
            raise ValueError(f"openai engine: conversation {i} must be a non-empty list of messages")
        msgs = []
        for j, m in enumerate(conv):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise ValueError(f"openai engine: conversation {i}, message {j} must be a dict with string 'role' and 'content', got {m!r:.120}")
            msgs.append({"role": m["role"], "content": m["content"]})
        out.append(msgs)
    return out


def _first_choice(data: dict, url: str) -> dict:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        err = data.get("error")
        what = f"an error: {_snippet(str(err))}" if err else f"no choices: {_snippet(str(data))}"
        raise OpenAIEngineError(f"POST {url}: the reply has {what}", url)
    return choices[0]


async def _gather_or_cancel(coros: list) -> list:
    """Run all; on the first failure cancel the rest (no requests left running) and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _snippet(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "…"


def _retry_after(value: str | None) -> float | None:
    try:
        v = float(value) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None
    return v if v is not None and math.isfinite(v) and v >= 0 else None
