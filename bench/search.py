"""Local search: index build time and queries per second on one core over a generated corpus.

Generates ``--docs`` documents of ``--words`` words (default 100k passages of 100 words, one
passage each) from an invented vocabulary with a Zipf law (s = 1.1, like word frequencies in
text) plus a two-word title per document, writes them as JSONL, then measures:

- build: reading + chunking + bm25s tokenising + indexing + saving (``build_index``);
- load: ``BM25Index.load`` of the saved index;
- queries/s, one query at a time (as the search tool issues them), through
  ``BM25Index.search`` and through ``SearchTool.run`` (formatting, no cache), with the process
  pinned to one CPU core; queries are 2-5 words of a random passage, its title's first word
  included (entity-style queries, as the lookup solver writes);
- for comparison, bm25s's own ``retrieve`` on the same queries.

    python bench/search.py                      # 100k passages (about 2 GB peak RSS)
    python bench/search.py --docs 20000 --queries 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from tirl.tools.search import BM25Index, SearchConfig, SearchTool, build_index
from tirl.tools.search.tool import LocalBackend
from tirl.types import ToolCall


def _vocabulary(rng: np.random.Generator, n: int) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    out, seen = [], set()
    while len(out) < n:
        w = "".join(rng.choice(letters, size=int(rng.integers(4, 10))))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def make_corpus(path: Path, n_docs: int, n_words: int, vocab_size: int, seed: int) -> list[tuple[str, str]]:
    """Write the corpus; return (title, text) of every document (for drawing queries)."""
    rng = np.random.default_rng(seed)
    vocab = np.array(_vocabulary(rng, vocab_size))
    p = 1.0 / np.arange(1, vocab_size + 1) ** 1.1
    p /= p.sum()
    ids = rng.choice(vocab_size, size=(n_docs, n_words), p=p)
    titles = rng.choice(vocab_size // 2, size=(n_docs, 2)) + vocab_size // 2  # rarer words name things
    docs = []
    with open(path, "w") as f:
        for i in range(n_docs):
            title = " ".join(vocab[titles[i]]).title()
            text = " ".join(vocab[ids[i]])
            docs.append((title, text))
            f.write(json.dumps({"id": str(i), "title": title, "text": text}) + "\n")
    return docs


def make_queries(docs: list[tuple[str, str]], n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed + 1)
    out = []
    for i in rng.integers(0, len(docs), size=n):
        title, text = docs[i]
        words = text.split()
        k = int(rng.integers(1, 5))
        out.append(" ".join([title.split()[0], *rng.choice(words, size=k, replace=False)]))
    return out


def _rate(fn, queries: list[str]) -> float:
    fn(queries[0])  # warm
    t0 = time.perf_counter()
    for q in queries:
        fn(q)
    return len(queries) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--words", type=int, default=100)
    ap.add_argument("--vocab", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--topk", type=int, default=3)
    ap.add_argument("--core", type=int, default=0, help="CPU core to pin the process to")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.core})

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        t0 = time.perf_counter()
        docs = make_corpus(corpus, args.docs, args.words, args.vocab, args.seed)
        gen_s = time.perf_counter() - t0
        queries = make_queries(docs, args.queries, args.seed)
        del docs

        t0 = time.perf_counter()
        index = build_index(corpus, Path(tmp) / "idx", chunk_words=args.words)
        build_s = time.perf_counter() - t0
        n_passages = len(index)
        del index
        t0 = time.perf_counter()
        index = BM25Index.load(Path(tmp) / "idx")
        load_s = time.perf_counter() - t0

        k = args.topk
        search_qps = _rate(lambda q: index.search([q], k), queries)
        tool = SearchTool(SearchConfig(topk=k, cache_size=0), backend=LocalBackend(index))

        async def tool_loop() -> float:
            calls = [ToolCall("search", {"query": q}, "") for q in queries]
            await tool.run(calls[0], "s")
            t0 = time.perf_counter()
            for c in calls:
                await tool.run(c, "s")
            return len(calls) / (time.perf_counter() - t0)

        tool_qps = asyncio.run(tool_loop())
        import bm25s

        bm = index._bm25
        n_native = min(len(queries), 300)
        native_qps = _rate(
            lambda q: bm.retrieve(bm25s.tokenize([q], stopwords="en", return_ids=False, show_progress=False), k=k, show_progress=False, n_threads=1),
            queries[:n_native],
        )
        # the same top passages as bm25s's retrieve (where scores are distinct)
        agree = 0
        for q in queries[:200]:
            ours = [h.score for h in index.search([q], k)[0]]
            _, scores = bm.retrieve(bm25s.tokenize([q], stopwords="en", return_ids=False, show_progress=False), k=k, show_progress=False, n_threads=1)
            theirs = [float(s) for s in scores[0] if s > 0]
            agree += np.allclose(ours, theirs, rtol=1e-5)
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"corpus: {n_passages} passages of {args.words} words, vocabulary {args.vocab} (generated in {gen_s:.1f} s)")
    print("| measurement | value |\n|---|---|")
    print(f"| index build (read, chunk, tokenise, index, save) | {build_s:.1f} s |")
    print(f"| index load | {load_s:.1f} s |")
    print(f"| queries/s, BM25Index.search, one core | {search_qps:,.0f} |")
    print(f"| queries/s, SearchTool.run (formatted, no cache), one core | {tool_qps:,.0f} |")
    print(f"| queries/s, bm25s BM25.retrieve (for comparison), one core | {native_qps:,.0f} |")
    print(f"| top-{k} scores equal to bm25s.retrieve's | {agree}/200 queries |")
    print(f"| peak RSS | {rss_gb:.2f} GB |")


if __name__ == "__main__":
    main()
