"""The local search index: corpus formats and chunking, BM25 ranking, the on-disk cache keyed by
corpus content (rebuilt when the corpus changes, reused when it does not), bad corpora as one
clear error."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tirl.tools.search import BM25Index, CorpusError, build_index, cached_index, corpus_hash, index_is_current, read_passages
from tirl.tools.search.corpus import chunk, read_documents


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _filler(rng: random.Random, n_docs: int) -> list[dict]:
    """Distractor documents that share words with the planted one."""
    words = "city river company founded year people museum harbour bridge market north south old new".split()
    return [{"id": f"f{i}", "title": f"Place {i}", "text": " ".join(rng.choice(words) for _ in range(40))} for i in range(n_docs)]


def test_formats_read_the_same_documents(tmp_path):
    rows = [{"id": "a", "title": "Alpha", "text": "alpha text one"}, {"id": "b", "title": "Beta", "text": "beta text two"}]
    j = _jsonl(tmp_path / "c.jsonl", rows)
    flash = _jsonl(tmp_path / "f.jsonl", [{"id": r["id"], "contents": f'"{r["title"]}"\n{r["text"]}'} for r in rows])
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# Alpha\nalpha text one")
    (folder / "sub" / "b.txt").write_text("beta text two")
    want = [("a", "Alpha", "alpha text one"), ("b", "Beta", "beta text two")]
    for corpus in (j, flash, tmp_path / "c.parquet"):
        assert [(d.id, d.title, d.text.strip()) for d in read_documents(corpus)] == want
    docs = list(read_documents(folder))
    assert [(d.id, d.title) for d in docs] == [("a.md", "Alpha"), ("sub/b.txt", "b")]


def test_chunking_keeps_titles_and_merges_a_short_tail():
    from tirl.tools.search.corpus import Document

    # 220 words = 100 + 100 + 20: a tail under a quarter of 100 joins the passage before it
    parts = chunk(Document("d", "T", " ".join(f"w{i}" for i in range(220))), 100)
    assert [len(p.text.split()) for p in parts] == [100, 120] and all(p.title == "T" for p in parts)
    assert [p.id for p in parts] == ["d#0", "d#1"]
    parts = chunk(Document("d", "T", " ".join(f"w{i}" for i in range(230))), 100)
    assert [len(p.text.split()) for p in parts] == [100, 100, 30]
    assert chunk(Document("d", "T", "one two"), 100)[0].id == "d"  # one passage keeps the document's id


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"id": 1, "text": "ok"}\n{not json\n', "c.jsonl:2: not valid JSON"),
        ('{"id": 1, "body": "no text"}\n', "needs 'text'"),
        ('{"id": 1, "text": 5}\n', "must be strings"),
        ("[1, 2]\n", "must be a JSON object"),
        ('{"id": 1, "text": "   "}\n', "no text to index"),
    ],
)
def test_bad_corpus_is_one_clear_error(tmp_path, content, message):
    (tmp_path / "c.jsonl").write_text(content)
    with pytest.raises(CorpusError, match=message):
        read_passages(tmp_path / "c.jsonl", 100)


def test_missing_or_unknown_corpus(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_passages(tmp_path / "nope.jsonl", 100)
    (tmp_path / "c.csv").write_text("a,b\n")
    with pytest.raises(CorpusError, match="give a .jsonl"):
        read_passages(tmp_path / "c.csv", 100)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="holds no"):
        read_passages(tmp_path / "empty", 100)


def test_bm25_ranks_the_planted_passage_first(tmp_path):
    rng = random.Random(0)
    rows = _filler(rng, 300)
    planted = {"id": "planted", "title": "Quorvath Bridge", "text": "The Quorvath bridge over the river was built in 1843 by the harbour company."}
    rows.insert(137, planted)
    index = build_index(_jsonl(tmp_path / "c.jsonl", rows), tmp_path / "idx")
    (hits,) = index.search(["when was the Quorvath bridge built"], 3)
    assert hits[0].id == "planted" and hits[0].title == "Quorvath Bridge"
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    # a query without any corpus word (or only stop words) matches nothing
    assert index.search(["zzzq wxyv", "the of and"], 3) == [[], []]
    # loaded from disk, the same index gives the same ranking
    loaded = BM25Index.load(tmp_path / "idx")
    assert loaded.search(["when was the Quorvath bridge built"], 3) == [hits]


def test_cache_is_keyed_by_content_and_rebuilt_when_the_corpus_changes(tmp_path, monkeypatch):
    corpus = _jsonl(tmp_path / "c.jsonl", [{"id": "a", "title": "A", "text": "first version of the text"}])
    cache = tmp_path / "cache"
    builds = []
    real = BM25Index.build.__func__

    def counting(cls, passages, meta=None, show_progress=False):
        builds.append(len(passages))
        return real(cls, passages, meta, show_progress)

    monkeypatch.setattr(BM25Index, "build", classmethod(counting))
    first = cached_index(corpus, 100, cache, show_progress=False)
    again = cached_index(corpus, 100, cache, show_progress=False)
    assert len(builds) == 1 and first.search(["version"], 1)[0][0].text == again.search(["version"], 1)[0][0].text
    # a renamed copy with the same bytes is the same corpus
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(corpus.read_bytes())
    cached_index(copy, 100, cache, show_progress=False)
    assert len(builds) == 1
    # changed content: a new index, whose results are the new text
    _jsonl(corpus, [{"id": "a", "title": "A", "text": "second edition replaces it"}, {"id": "b", "title": "B", "text": "another"}])
    changed = cached_index(corpus, 100, cache, show_progress=False)
    assert len(builds) == 2 and changed.search(["edition"], 1)[0][0].text == "second edition replaces it"
    assert changed.search(["version"], 1) == [[]]
    # other chunking is another index too
    cached_index(corpus, 50, cache, show_progress=False)
    assert len(builds) == 3 and len(list(cache.iterdir())) == 3


def test_explicit_index_dir_knows_whether_it_is_current(tmp_path):
    corpus = _jsonl(tmp_path / "c.jsonl", [{"id": "a", "title": "A", "text": "text"}])
    out = tmp_path / "idx"
    assert not index_is_current(out, corpus, 100)
    build_index(corpus, out, 100)
    assert index_is_current(out, corpus, 100) and not index_is_current(out, corpus, 50)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["corpus_hash"] == corpus_hash(corpus, 100) and meta["n_passages"] == 1
    _jsonl(corpus, [{"id": "a", "title": "A", "text": "changed"}])
    assert not index_is_current(out, corpus, 100)
    build_index(corpus, out, 100)  # replaces the old index in place
    assert BM25Index.load(out).passages[0].text == "changed"
    # a directory that is not an index is never overwritten
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(CorpusError, match="not a search index"):
        build_index(corpus, tmp_path / "other", 100)
    assert (tmp_path / "other" / "keep.txt").exists()
    with pytest.raises(CorpusError, match="not a search index"):
        BM25Index.load(tmp_path / "other")


@pytest.mark.parametrize("k", [1, 3, 10, 40])
def test_top_k_is_the_best_k_in_order_with_ties_in_corpus_order(k):
    """tirl's selection (argmax passes for small k, argpartition beyond) against a full sort, on
    scores with many ties (the case numpy's argpartition is slow on) and on distinct scores."""
    import numpy as np

    from tirl.tools.search.index import _top_k

    rng = np.random.default_rng(k)
    for scores in (rng.integers(0, 4, size=500).astype(np.float32), rng.random(500).astype(np.float32)):
        cand = np.flatnonzero(scores > 0)
        want = sorted(cand.tolist(), key=lambda i: (-scores[i], i))[:k]
        assert _top_k(scores, cand, k).tolist() == want
    assert _top_k(np.zeros(5, np.float32), np.array([], dtype=np.int64), 3).tolist() == []


def test_scores_are_bm25s_scores(tmp_path):
    """The ranking uses bm25s's own scores: the same top passages and scores as its retrieve()."""
    import bm25s

    rng = random.Random(1)
    index = build_index(_jsonl(tmp_path / "c.jsonl", _filler(rng, 200)), tmp_path / "idx")
    queries = ["city river", "old harbour market", "north bridge museum people"]
    ours = index.search(queries, 5)
    docs, scores = index._bm25.retrieve(bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False), k=5, show_progress=False)
    for hits, s in zip(ours, scores):
        assert [round(h.score, 5) for h in hits] == [round(float(x), 5) for x in s]
