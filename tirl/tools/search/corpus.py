"""A search corpus: documents read from a file or a folder, split into passages.

Accepted corpora (docs/DESIGN.md, "Search"):
- JSONL, one document per line: ``{"id", "title", "text"}`` (``id`` and ``title`` optional), or
  the FlashRAG / Search-R1 layout ``{"id", "contents"}`` whose first line is the title (in
  quotes in their Wikipedia dump) and the rest the text;
- Parquet with the same columns;
- a ``.txt`` / ``.md`` file, or a folder of them (searched recursively): one document per file,
  titled by its first Markdown heading, else its file name.

Documents are split into passages of ``chunk_words`` words (the last piece joins the one before
when it is shorter than a quarter of that), each keeping its document's title, as the DPR /
Search-R1 Wikipedia passages do. A passage's id is its document's id, with ``#k`` appended when
the document has several passages.

``corpus_hash`` fingerprints the corpus files' bytes and the chunking, so a cached index is
rebuilt exactly when either changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tirl.errors import UserError

TEXT_SUFFIXES = (".txt", ".md")
FORMAT_VERSION = 1  # bump when reading or chunking changes what a corpus becomes


class CorpusError(UserError):
    """The corpus cannot be read: a missing file, a bad line, an unknown format."""


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Hit:
    """One retrieved passage and its score (BM25 for the local backend; the server's otherwise)."""

    id: str
    title: str
    text: str
    score: float


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str


def _split_contents(contents: str) -> tuple[str, str]:
    """FlashRAG ``contents``: ``"Title"\\ntext`` -> (Title, text)."""
    title, _, text = contents.partition("\n")
    title = title.strip()
    if len(title) >= 2 and title[0] == title[-1] == '"':
        title = title[1:-1]
    return title, text.strip()


def _document(row: object, where: str, default_id: str) -> Document:
    if not isinstance(row, dict):
        raise CorpusError(f"{where}: a document must be a JSON object with 'text' (or 'contents'), got {type(row).__name__}")
    doc_id = row.get("id", default_id)
    if doc_id is None or isinstance(doc_id, (dict, list)):
        raise CorpusError(f"{where}: 'id' must be a string or a number, got {doc_id!r}")
    if "text" in row:
        title, text = row.get("title") or "", row["text"]
    elif "contents" in row:
        if not isinstance(row["contents"], str):
            raise CorpusError(f"{where}: 'contents' must be a string")
        title, text = _split_contents(row["contents"])
    else:
        raise CorpusError(f"{where}: a document needs 'text' (with an optional 'title') or FlashRAG's 'contents'")
    if not isinstance(text, str) or not isinstance(title, str):
        raise CorpusError(f"{where}: 'title' and 'text' must be strings")
    return Document(str(doc_id), title.strip(), text)


def _read_jsonl(path: Path) -> Iterator[Document]:
    try:
        with path.open("rb") as f:
            for n, raw in enumerate(f, 1):
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8").strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise CorpusError(f"{path}:{n}: not valid JSON ({getattr(e, 'msg', e)})") from None
                yield _document(row, f"{path}:{n}", str(n - 1))
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not UTF-8 text") from None


def _read_parquet(path: Path) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise CorpusError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    for n, row in enumerate(table.to_pylist()):
        yield _document(row, f"{path} row {n}", str(n))


def _read_text(path: Path, doc_id: str) -> Document:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: not UTF-8 text") from None
    title = path.stem
    for line in text.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip() or title
            break
        if line.strip():
            break
    return Document(doc_id, title, text)


def corpus_files(corpus: str | Path) -> list[Path]:
    """The files that make up a corpus, in a fixed order."""
    path = Path(corpus)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise CorpusError(f"corpus folder {path} holds no {' or '.join(TEXT_SUFFIXES)} files")
        return files
    if not path.exists():
        raise CorpusError(f"corpus {path}: no such file or folder")
    if path.suffix.lower() not in (".jsonl", ".parquet", *TEXT_SUFFIXES):
        raise CorpusError(f"corpus {path}: give a .jsonl, .parquet, .txt or .md file or a folder of .txt/.md files")
    return [path]


def read_documents(corpus: str | Path) -> Iterator[Document]:
    path = Path(corpus)
    for f in corpus_files(path):
        suffix = f.suffix.lower()
        if suffix == ".jsonl":
            yield from _read_jsonl(f)
        elif suffix == ".parquet":
            yield from _read_parquet(f)
        else:
            yield _read_text(f, str(f.relative_to(path)) if path.is_dir() else f.name)


def chunk(doc: Document, chunk_words: int) -> list[Passage]:
    words = doc.text.split()
    if not words:
        return []
    pieces = [words[i : i + chunk_words] for i in range(0, len(words), chunk_words)]
    if len(pieces) > 1 and len(pieces[-1]) < chunk_words / 4:
        tail = pieces.pop()
        pieces[-1] = pieces[-1] + tail
    if len(pieces) == 1:
        return [Passage(doc.id, doc.title, " ".join(pieces[0]))]
    return [Passage(f"{doc.id}#{k}", doc.title, " ".join(p)) for k, p in enumerate(pieces)]


def read_passages(corpus: str | Path, chunk_words: int) -> list[Passage]:
    if chunk_words < 1:
        raise CorpusError(f"chunk_words must be >= 1, got {chunk_words}")
    passages = [p for doc in read_documents(corpus) for p in chunk(doc, chunk_words)]
    if not passages:
        raise CorpusError(f"corpus {corpus} has no text to index")
    return passages


def corpus_hash(corpus: str | Path, chunk_words: int) -> str:
    """SHA-256 over the corpus files (relative names and bytes), the chunk length and the format
    version: the key of the index cache."""
    path = Path(corpus)
    h = hashlib.sha256(f"tirl-corpus|v{FORMAT_VERSION}|chunk={chunk_words}".encode())
    for f in corpus_files(path):
        name = str(f.relative_to(path)) if path.is_dir() else f.suffix.lower()
        h.update(f"\x00{name}\x00".encode())
        with f.open("rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()
