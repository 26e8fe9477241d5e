"""Settings of the search tool, usable without tirl's config tree (``tools.retrieval`` mirrors
them field for field; ``tirl.train.components.search_config`` converts one into the other)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SearchConfig:
    corpus: str | None = None
    """A corpus to index (JSONL of {id, title, text} or FlashRAG {id, contents}, Parquet, a
    .txt/.md file or a folder of them); its BM25 index is built on first use and cached on disk,
    keyed by the corpus content."""
    index: str | None = None
    """A directory written by ``tirl index build`` (or by the cache)."""
    url: str | None = None
    """A retrieval server with the Search-R1/FlashRAG API (``POST {url}/retrieve``), e.g.
    ``http://127.0.0.1:8000``; ``tirl serve retriever`` is one."""
    topk: int = 3
    """Passages shown per query when the call does not say (the Hermes schema's ``topk``)."""
    max_topk: int = 10
    """Largest ``topk`` a call may ask for."""
    max_passage_chars: int = 800
    """Characters of one passage shown to the model; longer ones are cut with an ellipsis."""
    max_query_chars: int = 1000
    """Longer queries are refused with an error observation (a model that pastes its whole
    context into the query learns that it does not work)."""
    chunk_words: int = 100
    """Passage length when a corpus is indexed (words; documents are split into passages of
    this many words, each keeping its document's title, as in the DPR / Search-R1 Wikipedia)."""
    timeout_s: float = 10.0
    """Remote backend: seconds one request may take; a timeout is an observation."""
    cache_size: int = 10000
    """Queries whose results are remembered for the run (0: no cache)."""
    cache_dir: str | None = None
    """Where indexes built from a corpus are cached; None: ``$TIRL_CACHE/search``."""
