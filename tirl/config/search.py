"""The ``tools.retrieval`` section: where the ``search`` tool looks (``tools.search=true`` turns
the tool on) and how it shows what it found.

It mirrors the search tool's own dataclass (``tirl.tools.search.config.SearchConfig``) field for
field, with the same defaults; ``tirl.train.components.search_config`` converts one into the
other and a test (``tests/test_search_tool.py``) checks that the two agree. With none of
``corpus``, ``index`` and ``url`` set, a run on the ``lookup`` task searches that task's own
generated corpus.
"""

from __future__ import annotations

from pydantic import Field

from tirl.config.base import Section


class RetrievalSection(Section):
    corpus: str | None = None
    """A corpus to index: JSONL ({id, title, text} or FlashRAG {id, contents}), Parquet, a .txt/.md
    file or a folder of them. Its BM25 index is built on first use and cached on disk, keyed by
    the corpus content (a changed corpus is re-indexed)."""
    index: str | None = None
    """An index directory written by ``tirl index build CORPUS --out DIR``."""
    url: str | None = None
    """A retrieval server with the Search-R1/FlashRAG API (POST {url}/retrieve), e.g. an e5/FAISS
    Wikipedia server or ``tirl serve retriever``."""
    topk: int = Field(3, ge=1)
    """Passages shown per query when the call does not ask for a number."""
    max_topk: int = Field(10, ge=1)
    """Largest topk a call may ask for."""
    max_passage_chars: int = Field(800, ge=20)
    """Characters of one passage shown to the model (cut with an ellipsis)."""
    max_query_chars: int = Field(1000, ge=1)
    """Longer queries get an error observation."""
    chunk_words: int = Field(100, ge=1)
    """Passage length in words when a corpus is indexed."""
    timeout_s: float = Field(10.0, gt=0)
    """Remote backend: seconds one request may take (a timeout is an observation)."""
    cache_size: int = Field(10000, ge=0)
    """Queries whose results are remembered for the run; 0: no cache."""
    cache_dir: str | None = None
    """Where indexes built from a corpus are cached; None: $TIRL_CACHE/search (~/.cache/tirl/search)."""
