"""The retrieval-server API of Search-R1 / FlashRAG, client side.

Request: ``POST {url}/retrieve`` with ``{"queries": [...], "topk": k, "return_scores": true}``.
Reply: ``{"result": [[{"document": DOC, "score": s}, ...], ...]}``, one list per query (without
``return_scores`` the inner items are the documents themselves). ``DOC`` is a corpus row: Search-R1's
e5 Wikipedia server returns ``{"id", "contents"}`` with ``contents = '"Title"\\ntext'``; others
send ``{"id", "title", "text"}`` or a bare ``contents`` string. All are read, so an existing dense
(e5 / FAISS) server drops in unchanged; ``tirl serve retriever`` sends both ``contents`` and
``title``/``text``.

Every failure (connection refused, timeout, an HTTP error, a reply in another shape) raises
``SearchError``, which the tool turns into an observation the model reads.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tirl.tools.search.corpus import Hit, _split_contents


class SearchError(Exception):
    """A search that did not return results; the message is what the model reads."""

    def __init__(self, message: str, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


def _hit(item: Any) -> Hit:
    score = 0.0
    if isinstance(item, dict) and "document" in item:
        score = item.get("score", 0.0)
        item = item["document"]
    if isinstance(item, str):
        title, text = _split_contents(item)
        return Hit("", title, text, float(score))
    if not isinstance(item, dict):
        raise SearchError(f"the retrieval server sent a document of type {type(item).__name__}")
    if isinstance(item.get("text"), str):
        title, text = str(item.get("title") or ""), item["text"]
    elif isinstance(item.get("contents"), str):
        title, text = _split_contents(item["contents"])
    else:
        raise SearchError("the retrieval server sent a document without 'contents' or 'text'")
    if not isinstance(score, (int, float)):
        raise SearchError(f"the retrieval server sent a score of type {type(score).__name__}")
    return Hit(str(item.get("id", "")), title, text, float(score))


def parse_reply(reply: Any, n_queries: int) -> list[list[Hit]]:
    result = reply.get("result") if isinstance(reply, dict) else None
    if not isinstance(result, list) or len(result) != n_queries or not all(isinstance(r, list) for r in result):
        raise SearchError(f"the retrieval server's reply is not {{'result': [one list per query]}} for {n_queries} queries")
    return [[_hit(item) for item in per_query] for per_query in result]


class RemoteBackend:
    """Searches through a retrieval server. Sync calls share one connection pool; async calls
    use a pool bound to the running event loop (a new loop, e.g. a new ``asyncio.run``, gets
    a new pool)."""

    def __init__(self, url: str, timeout_s: float = 10.0):
        self.url = url.rstrip("/") + ("" if url.rstrip("/").endswith("/retrieve") else "/retrieve")
        self.timeout = httpx.Timeout(timeout_s)
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None

    def _body(self, queries: list[str], k: int) -> dict:
        return {"queries": list(queries), "topk": k, "return_scores": True}

    def _reply(self, response: httpx.Response, n: int) -> list[list[Hit]]:
        if response.status_code != 200:
            raise SearchError(f"the retrieval server answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            reply = response.json()
        except ValueError:
            raise SearchError("the retrieval server's reply is not JSON") from None
        return parse_reply(reply, n)

    def _error(self, e: httpx.HTTPError) -> SearchError:
        if isinstance(e, httpx.TimeoutException):
            return SearchError(f"the retrieval server did not answer within {self.timeout.read:g} s", timed_out=True)
        return SearchError(f"cannot reach the retrieval server at {self.url} ({type(e).__name__})")

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        try:
            response = self._client.post(self.url, json=self._body(queries, k))
        except httpx.HTTPError as e:
            raise self._error(e) from None
        return self._reply(response, len(queries))

    async def asearch(self, query: str, k: int) -> list[Hit]:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:
            self._aclient, self._aloop = httpx.AsyncClient(timeout=self.timeout), loop
        try:
            response = await self._aclient.post(self.url, json=self._body([query], k))
        except httpx.HTTPError as e:
            raise self._error(e) from None
        return self._reply(response, 1)[0]

    async def aclose(self) -> None:
        if self._aclient is not None and self._aloop is asyncio.get_running_loop():
            await self._aclient.aclose()
        self._aclient = None
        if self._client is not None:
            self._client.close()
            self._client = None
