"""The local BM25 index: built with ``bm25s`` (Lù 2024, a maintained sparse-matrix BM25; Lucene's
variant, k1 = 1.5, b = 0.75), saved to a directory, cached on disk by corpus content.

An index directory holds ``meta.json`` (format, corpus hash, passage count, chunking),
``passages.jsonl`` (id, title, text, in index order) and ``bm25/`` (bm25s's own files). It is
written into a temporary sibling and renamed into place, so an interrupted build leaves no
half-index behind.

Passages are indexed as ``title + text`` (the title names the entity a passage is about, as in
Search-R1's Wikipedia ``contents``), tokenised by bm25s (lower case, words of two or more
characters, English stop words removed, no stemming).

Scoring is bm25s's; the top-k selection is tirl's: it keeps only the passages that share a term
with the query (the others score 0 and are no match) and picks the best k of those by k passes
of ``argmax``. bm25s's own ``retrieve`` runs ``numpy.argpartition`` over every passage, whose
introselect degrades on many equal values: ~13 ms per query over 100k mostly-zero scores
(numpy 2.4) against ~0.3 ms for the scan (docs/BENCHMARKS.md has the throughput).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tirl.cache import cache_dir
from tirl.tools.search.corpus import CorpusError, Hit, Passage, corpus_hash, read_passages

INDEX_VERSION = 1
STOPWORDS = "en"


def _bm25s():
    import bm25s  # imported late: loading an index is the first thing that needs it

    return bm25s


class BM25Index:
    """Passages and their BM25 index; ``search`` is thread-safe (it only reads)."""

    def __init__(self, passages: list[Passage], retriever, meta: dict):
        self.passages = passages
        self.meta = meta
        self._bm25 = retriever

    def __len__(self) -> int:
        return len(self.passages)

    # -- build / save / load ------------------------------------------------------------
    @classmethod
    def build(cls, passages: list[Passage], meta: dict | None = None, show_progress: bool = False) -> BM25Index:
        bm25s = _bm25s()
        tokens = bm25s.tokenize([f"{p.title} {p.text}" for p in passages], stopwords=STOPWORDS, show_progress=show_progress)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=show_progress)
        return cls(passages, retriever, {"version": INDEX_VERSION, "n_passages": len(passages), **(meta or {})})

    def save(self, out: str | Path) -> Path:
        """Write the index to ``out`` atomically (replacing an index already there)."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            self._bm25.save(str(tmp / "bm25"), show_progress=False)
            with open(tmp / "passages.jsonl", "w", encoding="utf-8") as f:
                for p in self.passages:
                    f.write(json.dumps({"id": p.id, "title": p.title, "text": p.text}, ensure_ascii=False) + "\n")
            (tmp / "meta.json").write_text(json.dumps(self.meta, indent=2))
            if out.exists():
                if not is_index_dir(out):
                    raise CorpusError(f"{out} exists and is not a search index; choose another --out")
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out

    @classmethod
    def load(cls, path: str | Path) -> BM25Index:
        path = Path(path)
        if not is_index_dir(path):
            raise CorpusError(f"{path} is not a search index (no meta.json); build one with `tirl index build CORPUS --out {path}`")
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("version") != INDEX_VERSION:
            raise CorpusError(f"{path}: index format {meta.get('version')} is not this tirl's ({INDEX_VERSION}); rebuild it with `tirl index build`")
        passages = []
        with open(path / "passages.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                passages.append(Passage(row["id"], row["title"], row["text"]))
        retriever = _bm25s().BM25.load(str(path / "bm25"), load_corpus=False, show_progress=False)
        if len(passages) != meta.get("n_passages"):
            raise CorpusError(f"{path}: passages.jsonl holds {len(passages)} passages, meta.json says {meta.get('n_passages')}; rebuild the index")
        return cls(passages, retriever, meta)

    # -- search -------------------------------------------------------------------------
    def search(self, queries: list[str], k: int) -> list[list[Hit]]:
        """The ``k`` best passages per query, best first (ties: corpus order). A passage that
        shares no term with the query is never returned, so a list may be shorter than ``k``."""
        tokenized = _bm25s().tokenize(list(queries), stopwords=STOPWORDS, return_ids=False, show_progress=False)
        return [self._top(q, k) for q in tokenized]

    def _top(self, tokens: list[str], k: int) -> list[Hit]:
        ids = self._bm25.get_tokens_ids(tokens)  # terms the corpus does not have are dropped
        if not ids or k < 1:
            return []
        scores_N = self._bm25.get_scores_from_ids(ids)
        cand = np.flatnonzero(scores_N > 0)
        return [Hit(self.passages[i].id, self.passages[i].title, self.passages[i].text, float(scores_N[i])) for i in _top_k(scores_N, cand, k)]


_SMALL_K = 32


def _top_k(scores_N: np.ndarray, cand: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` candidates of highest score, best first, ties in corpus order. For the small k
    of a tool call, k passes of ``argmax`` (each O(candidates), the first maximum wins ties);
    ``argpartition`` degrades badly when many scores are equal (same term counts and lengths)."""
    vals = scores_N[cand]
    if k <= _SMALL_K:
        vals = vals.copy()
        out = []
        for _ in range(min(k, len(cand))):
            j = int(vals.argmax())
            out.append(cand[j])
            vals[j] = -np.inf
        return np.asarray(out, dtype=np.int64)
    if len(cand) > k:
        # everything above the k-th best score, then the ties at it in corpus order (cand is sorted)
        kth = -np.partition(-vals, k - 1)[k - 1]
        above = np.flatnonzero(vals > kth)
        keep = np.concatenate([above, np.flatnonzero(vals == kth)[: k - len(above)]])
        cand, vals = cand[keep], vals[keep]
    return cand[np.lexsort((cand, -vals))]


def is_index_dir(path: Path) -> bool:
    return (path / "meta.json").is_file() and (path / "passages.jsonl").is_file()


def build_index(corpus: str | Path, out: str | Path, chunk_words: int = 100, show_progress: bool = False) -> BM25Index:
    """Read, chunk and index ``corpus`` into ``out``."""
    digest = corpus_hash(corpus, chunk_words)
    passages = read_passages(corpus, chunk_words)
    index = BM25Index.build(passages, {"corpus_hash": digest, "corpus": str(corpus), "chunk_words": chunk_words}, show_progress=show_progress)
    index.save(out)
    return index


def index_is_current(path: str | Path, corpus: str | Path, chunk_words: int) -> bool:
    """Whether ``path`` holds the index of ``corpus`` as it is now (same content, same chunking)."""
    path = Path(path)
    if not is_index_dir(path):
        return False
    try:
        meta = json.loads((path / "meta.json").read_text())
    except ValueError:
        return False
    return meta.get("version") == INDEX_VERSION and meta.get("corpus_hash") == corpus_hash(corpus, chunk_words)


def cached_index(corpus: str | Path, chunk_words: int = 100, cache: str | Path | None = None, show_progress: bool = True) -> BM25Index:
    """The index of ``corpus``, from the cache when one of this content exists, else built
    (with a progress bar) and cached under ``<cache>/<corpus hash>``."""
    root = Path(cache) if cache is not None else cache_dir() / "search"
    path = root / corpus_hash(corpus, chunk_words)[:32]
    if is_index_dir(path):
        return BM25Index.load(path)
    return build_index(corpus, path, chunk_words, show_progress=show_progress)
