"""``tirl index build`` and ``tirl serve retriever``: the search tool's index, built explicitly
and served over the Search-R1 / FlashRAG retrieval API.

    tirl index build corpus.jsonl --out indexes/wiki
    tirl serve retriever --index indexes/wiki --port 8000
    # then, in any run: tools.search=true tools.retrieval.url=http://127.0.0.1:8000
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from tirl.errors import UserError

index_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Search indexes: tirl index build CORPUS --out DIR.")
serve_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Servers: tirl serve retriever --index DIR --port P.")


@index_app.command("build")
def build_cmd(
    corpus: Path = typer.Argument(..., help="JSONL ({id, title, text} or FlashRAG {id, contents}), Parquet, a .txt/.md file or a folder of them."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the index to."),
    chunk_words: int = typer.Option(100, min=1, help="Passage length in words."),
    force: bool = typer.Option(False, help="Rebuild even when OUT already holds this corpus's index."),
):
    """Build the BM25 index of CORPUS into OUT (what tools.retrieval.index and `tirl serve retriever` read)."""
    from tirl.tools.search import build_index, index_is_current

    if not force and index_is_current(out, corpus, chunk_words):
        typer.echo(f"{out} is up to date with {corpus}", err=True)
        return
    t0 = time.perf_counter()
    index = build_index(corpus, out, chunk_words, show_progress=True)
    typer.echo(f"indexed {len(index)} passages of {corpus} into {out} in {time.perf_counter() - t0:.1f} s", err=True)


def load_search_index(index: Path | None, corpus: Path | None, chunk_words: int):
    """The index a command names with --index or --corpus (built and cached on first use)."""
    from tirl.tools.search import BM25Index, cached_index

    if (index is None) == (corpus is None):
        raise UserError("give exactly one of --index DIR or --corpus FILE")
    if index is not None:
        return BM25Index.load(index)
    return cached_index(corpus, chunk_words, show_progress=True)


@serve_app.command("retriever")
def retriever_cmd(
    index: Path | None = typer.Option(None, "--index", help="Index directory (from `tirl index build`)."),
    corpus: Path | None = typer.Option(None, "--corpus", help="Or a corpus, indexed (and cached) on start."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port (0: a free one, printed on start)."),
    topk: int = typer.Option(3, min=1, help="Passages per query when a request gives no topk."),
    chunk_words: int = typer.Option(100, min=1, help="Passage length when --corpus is indexed."),
):
    """Serve POST /retrieve (the Search-R1 / FlashRAG API) and GET /health from a local index."""
    from tirl.tools.search.server import make_server

    idx = load_search_index(index, corpus, chunk_words)
    try:
        server = make_server(idx, host, port, topk)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    bound_host, bound_port = server.server_address[:2]
    # one parseable line: tests and scripts read the port from it when --port 0
    print(f"serving {len(idx)} passages at http://{bound_host}:{bound_port}/retrieve", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
