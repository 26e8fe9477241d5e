"""The remote backend against the real ``tirl serve retriever``, started here as a subprocess on
127.0.0.1: the same results as the local backend on the same index; the server's API as
Search-R1 clients use it; a server that is down, times out or answers garbage is an observation
(never an exception, never an infrastructure error); ``tirl index build`` and ``tirl tool search``
by hand."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tirl.cli.main import app
from tirl.tools.search import BM25Index, RemoteBackend, SearchConfig, SearchError, SearchTool, build_index
from tirl.types import ToolCall

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["Who founded Veltrax Labs", "population of Kessel", "Voss", "engineering museum", "nothing matches zzqx"]


def _corpus(path: Path) -> Path:
    rows = [
        {"id": "v1", "title": "Veltrax Labs", "text": "Veltrax Labs was founded in 1987 by Ana Voss. It is headquartered in Kessel."},
        {"id": "v2", "title": "Veltrax Motors", "text": "Veltrax Motors was founded in 1992 by Leo Voss."},
        {"id": "a", "title": "Ana Voss", "text": "Ana Voss was born in 1952 in Kessel. She studied engineering."},
        {"id": "k", "title": "Kessel", "text": "Kessel has a population of 48200 and an engineering museum."},
        {"id": "p", "title": "Port Kessel", "text": "Port Kessel has a population of 9100."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("remote")
    build_index(_corpus(d / "c.jsonl"), d / "idx", 100)
    return d / "idx"


@pytest.fixture(scope="module")
def server(index_dir):
    """``tirl serve retriever`` on a free port of 127.0.0.1; yields its base URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tirl", "serve", "retriever", "--index", str(index_dir), "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        url = None
        while time.monotonic() < deadline and url is None:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError(f"tirl serve retriever exited with {proc.returncode}")
            if m := re.search(r"serving \d+ passages at (http://[\d.]+:\d+)/retrieve", line):
                url = m.group(1)
        assert url is not None, "the server did not report its address"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_remote_results_equal_local_results(server, index_dir):
    local = BM25Index.load(index_dir)
    remote = RemoteBackend(server)
    for k in (1, 3, 5):
        want, got = local.search(QUERIES, k), remote.search(QUERIES, k)
        assert [[(h.id, h.title, h.text) for h in hs] for hs in got] == [[(h.id, h.title, h.text) for h in hs] for hs in want]
        assert [[round(h.score, 4) for h in hs] for hs in got] == [[round(h.score, 4) for h in hs] for hs in want]
    # and through the tool, in both backends, the observation text is the same
    local_tool = SearchTool(SearchConfig(index=str(index_dir)))
    remote_tool = SearchTool(SearchConfig(url=server))

    async def both():
        out = []
        for q in QUERIES:
            call = ToolCall("search", {"query": q}, "")
            out.append(((await local_tool.run(call, "s")).output, (await remote_tool.run(call, "s")).output))
        await remote_tool.aclose()
        return out

    for a, b in asyncio.run(both()):
        assert a == b


def test_server_speaks_the_search_r1_api(server):
    r = httpx.post(f"{server}/retrieve", json={"queries": ["Kessel population"], "topk": 2, "return_scores": True}).json()
    (hits,) = r["result"]
    assert len(hits) == 2 and hits[0]["document"]["contents"] == '"Kessel"\nKessel has a population of 48200 and an engineering museum.'
    assert hits[0]["score"] >= hits[1]["score"] > 0
    r = httpx.post(f"{server}/retrieve", json={"queries": ["Kessel", "Voss"], "topk": 1}).json()  # no scores: bare documents
    assert [len(per) for per in r["result"]] == [1, 1] and all(set(per[0]) == {"id", "title", "text", "contents"} for per in r["result"])
    assert httpx.get(f"{server}/health").json() == {"status": "ok", "passages": 5}
    for body in ({"queries": "Kessel"}, {"queries": ["x"], "topk": -1}, {"queries": ["x"], "topk": "3"}, [1]):
        bad = httpx.post(f"{server}/retrieve", json=body)
        assert bad.status_code == 400 and "error" in bad.json()
    assert httpx.post(f"{server}/retrieve", content=b"{not json").status_code == 400
    assert httpx.post(f"{server}/nowhere", json={}).status_code == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Stub(BaseHTTPRequestHandler):
    """A broken retrieval server: hangs, answers 500, or answers text that is not the API."""

    mode = "hang"

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.mode == "hang":
            time.sleep(3)
            return
        body = b"internal error" if self.mode == "500" else (b"not json" if self.mode == "text" else b'{"result": [[{"document": 5}]]}')
        self.send_response(500 if self.mode == "500" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    "mode, text, timed_out",
    [("hang", "did not answer within", True), ("500", "HTTP 500", False), ("text", "not JSON", False), ("shape", "document of type int", False)],
)
def test_broken_server_is_an_observation(mode, text, timed_out):
    handler = type("H", (_Stub,), {"mode": mode})
    stub = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    stub.daemon_threads = True
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        tool = SearchTool(SearchConfig(url=f"http://127.0.0.1:{stub.server_address[1]}", timeout_s=0.5))
        obs = asyncio.run(tool.run(ToolCall("search", {"query": "Kessel"}, ""), "s"))
        assert not obs.ok and not obs.infra_error and obs.timed_out is timed_out
        assert obs.output.startswith("Error: search failed:") and text in obs.output
        assert tool.stats.errors == 1
    finally:
        stub.shutdown()
        stub.server_close()


def test_server_down_is_an_observation_and_the_sync_client_raises_search_error():
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    tool = SearchTool(SearchConfig(url=url, timeout_s=2))
    obs = asyncio.run(tool.run(ToolCall("search", {"query": "Kessel"}, ""), "s"))
    assert not obs.ok and not obs.infra_error and "cannot reach the retrieval server" in obs.output
    with pytest.raises(SearchError, match="cannot reach"):
        RemoteBackend(url).search(["Kessel"], 3)


def test_index_build_and_tool_search_by_hand(tmp_path, server):
    runner = CliRunner()
    corpus = _corpus(tmp_path / "c.jsonl")
    res = runner.invoke(app, ["index", "build", str(corpus), "--out", str(tmp_path / "idx")])
    assert res.exit_code == 0, res.output
    assert "indexed 5 passages" in res.output
    res = runner.invoke(app, ["index", "build", str(corpus), "--out", str(tmp_path / "idx")])
    assert res.exit_code == 0 and "up to date" in res.output
    # --json: one object per query, ranked passages with id, title, score, text
    (tmp_path / "q.txt").write_text("Who founded Veltrax Labs\n\npopulation of Kessel\n")
    res = runner.invoke(app, ["tool", "search", "--index", str(tmp_path / "idx"), "--queries", str(tmp_path / "q.txt"), "--topk", "2", "--json"])
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["query"] for r in records] == ["Who founded Veltrax Labs", "population of Kessel"]
    assert records[0]["passages"][0]["id"] == "v1" and set(records[0]["passages"][0]) == {"id", "title", "text", "score"}
    remote = runner.invoke(app, ["tool", "search", "--url", server, "--queries", str(tmp_path / "q.txt"), "--topk", "2", "--json"])
    assert remote.exit_code == 0 and remote.stdout == res.stdout
    # the text form is what the model reads
    res = runner.invoke(app, ["tool", "search", "--corpus", str(corpus), "--query", "Kessel population", "--topk", "1"])
    assert res.exit_code == 0 and "Doc 1 (Title: Kessel) Kessel has a population of 48200" in res.stdout
    # a server that is down: the error is printed and the exit status is 1
    res = runner.invoke(app, ["tool", "search", "--url", f"http://127.0.0.1:{_free_port()}", "--query", "x", "--json"])
    assert res.exit_code == 1 and "cannot reach" in json.loads(res.stdout)["error"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["tool", "search", "--query", "x"], "exactly one of corpus"),
        (["tool", "search", "--corpus", "nope.jsonl", "--query", "x"], "no such file"),
        (["index", "build", "nope.jsonl", "--out", "idx"], "no such file"),
        (["serve", "retriever"], "exactly one of --index"),
        (["serve", "retriever", "--index", "."], "is not a search index"),
    ],
)
def test_bad_search_inputs_are_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
