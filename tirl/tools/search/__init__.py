"""The ``search`` tool and its pieces (docs/DESIGN.md, "Search"): corpus reading and chunking
(``corpus``), the local BM25 index and its cache (``index``), the Search-R1/FlashRAG retrieval
API as a client (``remote``) and as a server (``server``), result formatting (``format``), the
tool itself (``tool``)."""

from tirl.tools.search.config import SearchConfig
from tirl.tools.search.corpus import CorpusError, Hit, Passage, corpus_hash, read_passages
from tirl.tools.search.index import BM25Index, build_index, cached_index, index_is_current
from tirl.tools.search.remote import RemoteBackend, SearchError
from tirl.tools.search.tool import LocalBackend, SearchTool, make_backend

__all__ = [
    "BM25Index",
    "CorpusError",
    "Hit",
    "LocalBackend",
    "Passage",
    "RemoteBackend",
    "SearchConfig",
    "SearchError",
    "SearchTool",
    "build_index",
    "cached_index",
    "corpus_hash",
    "index_is_current",
    "make_backend",
    "read_passages",
]
