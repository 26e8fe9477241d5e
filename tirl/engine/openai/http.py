"""HTTP to one OpenAI-compatible API root, with retries.

Every request is retried with exponential backoff (and jitter; ``Retry-After`` is honoured) on
connection errors, timeouts, HTTP 408/409/429 and 5xx; any other HTTP error fails at once. Errors
are ``OpenAIEngineError`` and name the URL, the HTTP status and the start of the server's reply,
with a hint for the usual mistakes (401/403: the API key's variable; 404: a base_url without
``/v1``). One connection pool and one concurrency limit serve every caller; they are made on
first use, on the engine's loop (``tirl.engine.openai.loop``), and belong to it.
"""

from __future__ import annotations

import asyncio
import math
import os
import random

import httpx

from tirl.engine.openai.config import OpenAIEngineConfig
from tirl.engine.openai.errors import OpenAIEngineError, snippet
from tirl.engine.openai.stats import OpenAIEngineStats

_MAX_BACKOFF_S = 30.0
_RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx


class HTTPClient:
    """Requests to ``config.base_url``; counts successes and retries into ``stats``.
    ``transport`` replaces the network (tests)."""

    def __init__(self, config: OpenAIEngineConfig, stats: OpenAIEngineStats, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.stats = stats
        self.base = config.base_url.rstrip("/")
        self._transport = transport
        self._model: str | None = config.model
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._model_lock: asyncio.Lock | None = None

    def _ensure_client(self) -> httpx.AsyncClient:
        # runs on the engine's loop: the client, semaphore and lock belong to it
        if self._client is None:
            limits = httpx.Limits(max_connections=self.config.max_concurrency, max_keepalive_connections=self.config.max_concurrency)
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.config.timeout_s), limits=limits, transport=self._transport)
            self._sem = asyncio.Semaphore(self.config.max_concurrency)
            self._model_lock = asyncio.Lock()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        env = self.config.api_key_env
        key = os.environ.get(env) if env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 2 * _MAX_BACKOFF_S)
        base = min(self.config.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)
        return base * (0.5 + random.random() / 2)  # jitter: concurrent retries do not arrive together

    async def request(self, method: str, path: str, body: dict | None = None, probe: bool = False) -> dict:
        """One API call with retries. ``probe``: a reply that complains about the prompt fails at
        once whatever its status (llama.cpp's server answers a validation error with HTTP 500)."""
        client = self._ensure_client()
        assert self._sem is not None
        url = f"{self.base}{path}"
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
                raise OpenAIEngineError(f"{method} {url}: HTTP {status}: {snippet(resp.text)}", url, status, resp.text)
            if status >= 500 and "validation error" in resp.text.lower():
                # llama.cpp's server reports a malformed request as HTTP 500: retrying cannot help
                raise OpenAIEngineError(
                    f"{method} {url}: HTTP {status} (the server rejected the request): {snippet(resp.text)}", url, status, resp.text
                )
            if status in _RETRY_STATUS or status >= 500:
                last, last_status = f"HTTP {status}: {snippet(resp.text)}", status
                retry_after = _retry_after(resp.headers.get("retry-after"))
                continue
            if status >= 400:
                hint = ""
                if status in (401, 403):
                    env = self.config.api_key_env
                    hint = (
                        f" (check the API key; it is read from ${env}{', which is not set' if env and not os.environ.get(env) else ''})"
                        if env
                        else " (no API key is configured: api_key_env is None)"
                    )
                elif status == 404:
                    hint = f" (is base_url={self.config.base_url!r} the API root, including /v1?)"
                raise OpenAIEngineError(f"{method} {url}: HTTP {status}{hint}: {snippet(resp.text)}", url, status, resp.text)
            try:
                data = resp.json()
            except ValueError:
                raise OpenAIEngineError(
                    f"{method} {url}: HTTP {status} but the reply is not JSON: {snippet(resp.text)}", url, status, resp.text
                ) from None
            if not isinstance(data, dict):
                raise OpenAIEngineError(f"{method} {url}: expected a JSON object, got {snippet(resp.text)}", url, status, resp.text)
            self.stats.requests += 1
            return data
        raise OpenAIEngineError(f"{method} {url}: gave up after {attempts} attempt(s); last error: {last}", url, last_status)

    async def model(self) -> str:
        """The model to name in requests: the configured one, else the first the server lists
        (asked once)."""
        self._ensure_client()
        assert self._model_lock is not None
        async with self._model_lock:
            if self._model is None:
                data = await self.request("GET", "/models")
                models = data.get("data")
                if not isinstance(models, list) or not models or not isinstance(models[0], dict) or "id" not in models[0]:
                    raise OpenAIEngineError(f"GET {self.base}/models lists no model; set the endpoint's model", f"{self.base}/models")
                self._model = str(models[0]["id"])
            return self._model


def _retry_after(value: str | None) -> float | None:
    try:
        v = float(value) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None
    return v if v is not None and math.isfinite(v) and v >= 0 else None
