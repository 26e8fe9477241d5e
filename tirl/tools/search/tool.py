"""The ``search`` tool: ranked passages of a corpus for a query (main argument ``query``,
optional ``topk``), from a local BM25 index or a Search-R1/FlashRAG retrieval server.

What the model reads is ``Doc i (Title: ...) text`` per passage (``tirl.tools.search.format``).
Nothing the model writes makes the tool raise: an empty query, a query over
``max_query_chars``, a bad ``topk``, a server that is down, answers an error or times out all
become observations (``ok=False``; ``timed_out`` for a timeout) the model reads, as the Python
tool's errors do; ``stats`` counts them so a run whose server is down is visible in its logs.
Results are remembered per run (``cache_size`` queries, least recently used dropped): GRPO
groups ask the same first query many times.

Search is stateless, so ``session`` is not used: every trajectory searches the same corpus.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tirl.errors import UserError
from tirl.tools.search.config import SearchConfig
from tirl.tools.search.corpus import Hit
from tirl.tools.search.format import dedupe, format_hits
from tirl.tools.search.index import BM25Index, cached_index
from tirl.tools.search.remote import RemoteBackend, SearchError
from tirl.types import Observation, ToolCall


class LocalBackend:
    """A BM25 index in this process."""

    def __init__(self, index: BM25Index):
        self.index = index

    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        return self.index.search(queries, k)

    async def asearch(self, query: str, k: int) -> list[Hit]:
        # inline: a query is well under a millisecond of numpy work (docs/BENCHMARKS.md), less
        # than handing it to a thread would cost
        return self.index.search([query], k)[0]

    async def aclose(self) -> None:
        pass


def make_backend(cfg: SearchConfig, show_progress: bool = True) -> LocalBackend | RemoteBackend:
    """The backend ``cfg`` names: exactly one of ``corpus``, ``index``, ``url``."""
    given = [name for name in ("corpus", "index", "url") if getattr(cfg, name)]
    if len(given) != 1:
        raise UserError(
            "the search tool needs exactly one of corpus (a file or folder to index), index (a directory from "
            f"`tirl index build`) or url (a retrieval server); got {', '.join(given) or 'none'}"
        )
    if cfg.url:
        if not cfg.url.startswith(("http://", "https://")):
            raise UserError(f"search url {cfg.url!r} must start with http:// or https://")
        return RemoteBackend(cfg.url, cfg.timeout_s)
    if cfg.index:
        return LocalBackend(BM25Index.load(cfg.index))
    assert cfg.corpus is not None
    return LocalBackend(cached_index(cfg.corpus, cfg.chunk_words, cfg.cache_dir, show_progress=show_progress))


@dataclass
class SearchStats:
    queries: int = 0
    cache_hits: int = 0
    errors: int = 0  # server errors and timeouts (not the model's malformed calls)


class SearchTool:
    """Tool ``search`` (main argument ``query``)."""

    name = "search"
    main_arg = "query"

    def __init__(self, cfg: SearchConfig | None = None, backend: LocalBackend | RemoteBackend | None = None, show_progress: bool = True):
        self.cfg = cfg or SearchConfig()
        if not 1 <= self.cfg.topk <= self.cfg.max_topk:
            raise UserError(f"search topk must be from 1 to max_topk ({self.cfg.max_topk}), got {self.cfg.topk}")
        self.backend = backend if backend is not None else make_backend(self.cfg, show_progress)
        self.description = (
            "Search the knowledge base and return the most relevant passages (title and text). "
            "Write a short query naming what you look for, e.g. an entity's name."
        )
        self.parameters: dict[str, Any] = {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "what to look for, e.g. a name and the fact wanted"},
                "topk": {"type": "integer", "description": f"passages to return (1-{self.cfg.max_topk}, default {self.cfg.topk})"},
            },
            "required": ["query"],
        }
        self._cache: OrderedDict[tuple[str, int], list[Hit]] = OrderedDict()
        self.stats = SearchStats()

    def _topk(self, value: Any) -> int | str:
        """The requested topk, or the error text for a bad one."""
        if value is None:
            return self.cfg.topk
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= self.cfg.max_topk:
            return f"Error: topk must be an integer from 1 to {self.cfg.max_topk}, got {value!r}"
        return value

    def _cached(self, key: tuple[str, int]) -> list[Hit] | None:
        hits = self._cache.get(key)
        if hits is not None:
            self._cache.move_to_end(key)
            self.stats.cache_hits += 1
        return hits

    def _remember(self, key: tuple[str, int], hits: list[Hit]) -> None:
        if self.cfg.cache_size > 0:
            self._cache[key] = hits
            while len(self._cache) > self.cfg.cache_size:
                self._cache.popitem(last=False)

    def check(self, arguments: Any) -> tuple[str, int] | str:
        """(query, topk) from a call's arguments, or the error text the model reads."""
        if not isinstance(arguments, dict):
            return "Error: the search tool takes a JSON object with 'query' (and optional 'topk')"
        query = arguments.get("query")
        if not isinstance(query, str):
            return "Error: 'query' must be a string"
        query = " ".join(query.split())
        if not query:
            return "Error: the search query is empty; write what to look for"
        if len(query) > self.cfg.max_query_chars:
            return f"Error: the search query is {len(query)} characters long; keep it under {self.cfg.max_query_chars} (a few words work best)"
        topk = self._topk(arguments.get("topk"))
        return topk if isinstance(topk, str) else (query, topk)

    async def search(self, query: str, topk: int) -> list[Hit]:
        """Deduplicated hits (raises SearchError when the backend fails)."""
        key = (query, topk)
        hits = self._cached(key)
        if hits is None:
            # ask for more than shown so that dropping repeats still leaves topk passages
            raw = await self.backend.asearch(query, min(2 * topk, 2 * self.cfg.max_topk))
            hits = dedupe(raw)[:topk]
            self._remember(key, hits)
        return hits

    async def run(self, call: ToolCall, session: str) -> Observation:
        if call.error:
            return Observation(ok=False, output=call.error, error="MalformedCall")
        t0 = time.perf_counter()
        checked = self.check(call.arguments)
        if isinstance(checked, str):
            return Observation(ok=False, output=checked, error="BadQuery")
        self.stats.queries += 1
        try:
            hits = await self.search(*checked)
        except SearchError as e:
            self.stats.errors += 1
            return Observation(
                ok=False, output=f"Error: search failed: {e}", error="SearchError", timed_out=e.timed_out, latency_ms=(time.perf_counter() - t0) * 1e3
            )
        return Observation(ok=True, output=format_hits(hits, self.cfg.max_passage_chars), latency_ms=(time.perf_counter() - t0) * 1e3)

    async def close_session(self, session: str) -> None:
        """Stateless: nothing to forget."""

    async def aclose(self) -> None:
        await self.backend.aclose()
