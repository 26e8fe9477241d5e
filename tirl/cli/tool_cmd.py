"""``tirl tool ...``: run one tool call by hand and print its observation as JSON.

    tirl tool python --code 'import math; math.factorial(20)'
    tirl tool python --file solution.py --timeout 30 --isolation none
    tirl tool calculator --expression '2^10 / 3'
    tirl tool search --corpus docs/ --query 'bm25 parameters' [--topk 5] [--json]

``python`` and ``calculator`` print exactly one JSON object on stdout: ``{"ok", "output",
"error", "timed_out", "latency_ms"}`` (warnings go to stderr). The exit status is 0 when the
tool ran, whatever the code did, and 1 when the sandbox itself failed. ``search`` prints what
the model would read for each query (``--json``: one object per query with the ranked
passages' ids, titles, scores and texts); its exit status is 1 when a search failed (a server
that is down or timed out).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from tirl.errors import UserError
from tirl.types import Observation

tool_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Run one tool call and print the observation.")


def _emit(obs: Observation) -> None:
    record = {"ok": obs.ok, "output": obs.output, "error": obs.error, "timed_out": obs.timed_out, "latency_ms": round(obs.latency_ms, 3)}
    typer.echo(json.dumps(record, ensure_ascii=False))
    if obs.infra_error:
        raise typer.Exit(1)


def _read_source(file: Path) -> str:
    if file.is_dir():
        raise UserError(f"--file {file} is a directory; give a Python file")
    try:
        return file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"--file {file}: no such file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"--file {file}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); is it a binary file?") from None
    except OSError as e:
        raise UserError(f"--file {file}: cannot read it ({e.strerror or e})") from None


@tool_app.command("python")
def python_cmd(
    code: str | None = typer.Option(None, "--code", "-c", help="Python source to run."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Run this file ('-' reads stdin)."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.001, max=86400.0, help="Wall-clock limit in seconds."),
    isolation: str = typer.Option("auto", "--isolation", help="auto | bwrap | none"),
):
    """Run Python code in the sandbox (one fresh session)."""
    from tirl.tools.python_sandbox import PythonSandbox, SandboxConfig, SandboxUnavailable

    if (code is None) == (file is None):
        raise typer.BadParameter("give exactly one of --code or --file")
    if file is not None:
        source = sys.stdin.read() if str(file) == "-" else _read_source(file)
    else:
        source = code or ""
    if isolation not in ("auto", "bwrap", "none"):
        raise typer.BadParameter(f"--isolation must be auto, bwrap or none, not {isolation!r}")
    try:
        sandbox = PythonSandbox(SandboxConfig(workers=1, timeout_s=timeout, cpu_s=timeout, isolation=isolation))
    except SandboxUnavailable as exc:
        _emit(Observation(ok=False, output=f"sandbox error: {exc}", error="SandboxUnavailable", infra_error=True))
        return
    try:
        obs = sandbox.run_sync(source, session="cli")
    finally:
        sandbox.close()
    _emit(obs)


@tool_app.command("calculator")
def calculator_cmd(expression: str = typer.Option(..., "--expression", "-e", help="Arithmetic expression.")):
    """Evaluate an arithmetic expression with the calculator tool."""
    from tirl.tools.calculator import Calculator

    _emit(Calculator().compute(expression))


@tool_app.command("search")
def search_cmd(
    corpus: Path | None = typer.Option(None, "--corpus", help="Corpus to search (indexed and cached on first use)."),
    index: Path | None = typer.Option(None, "--index", help="Or an index directory (from `tirl index build`)."),
    url: str | None = typer.Option(None, "--url", help="Or a retrieval server (POST URL/retrieve), e.g. http://127.0.0.1:8000."),
    query: str | None = typer.Option(None, "--query", "-q", help="One query."),
    queries: Path | None = typer.Option(None, "--queries", help="A file of queries, one per line ('-' reads stdin)."),
    topk: int = typer.Option(3, min=1, max=100, help="Passages per query."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per query: ranked passages with id, title, score, text."),
    chunk_words: int = typer.Option(100, min=1, help="Passage length when --corpus is indexed."),
    timeout: float = typer.Option(10.0, min=0.001, help="Seconds a server may take (--url)."),
):
    """Search a corpus, an index or a retrieval server, as the search tool does."""
    import asyncio

    from tirl.tools.search import SearchConfig, SearchError, SearchTool
    from tirl.tools.search.format import format_hits

    if (query is None) == (queries is None):
        raise typer.BadParameter("give exactly one of --query or --queries")
    if query is not None:
        qs = [query]
    else:
        text = sys.stdin.read() if str(queries) == "-" else _read_source(queries)
        qs = [line.strip() for line in text.splitlines() if line.strip()]
        if not qs:
            raise UserError(f"--queries {queries} holds no query")
    cfg = SearchConfig(
        corpus=str(corpus) if corpus else None,
        index=str(index) if index else None,
        url=url,
        topk=topk,
        max_topk=max(topk, 10),
        chunk_words=chunk_words,
        timeout_s=timeout,
        cache_size=0,
    )
    tool = SearchTool(cfg)
    failed = False

    async def go() -> None:
        nonlocal failed
        try:
            for q in qs:
                checked = tool.check({"query": q, "topk": topk})
                if isinstance(checked, str):
                    hits, error = None, checked
                else:
                    try:
                        hits, error = await tool.search(*checked), None
                    except SearchError as e:
                        hits, error = None, f"Error: search failed: {e}"
                failed = failed or error is not None
                if as_json:
                    record = {"query": q, "error": error, "passages": [vars(h) for h in hits or []]}
                    typer.echo(json.dumps(record, ensure_ascii=False))
                else:
                    typer.echo(f"# {q}\n{error or format_hits(hits, cfg.max_passage_chars)}\n")
        finally:
            await tool.aclose()

    asyncio.run(go())
    if failed:
        raise typer.Exit(1)
