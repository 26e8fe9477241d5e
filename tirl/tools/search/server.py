"""``tirl serve retriever``: the Search-R1 / FlashRAG retrieval API served from a local index, so
many rollout processes (or another framework's) share one index in memory.

``POST /retrieve`` takes ``{"queries": [...], "topk": k, "return_scores": bool}`` and answers
``{"result": [[{"document": {"id", "title", "text", "contents"}, "score": s}, ...], ...]}``
(without ``return_scores``: the documents alone), as Search-R1's ``retrieval_server.py`` does;
``contents`` is ``'"Title"\\ntext'`` as in their Wikipedia corpus. ``GET /health`` reports the
passage count. A bad request gets HTTP 400 with ``{"error": ...}``.

The standard library's ``ThreadingHTTPServer`` (one thread per connection) is enough: a query
costs well under a millisecond of numpy work, and it adds no dependency.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tirl.tools.search.corpus import Hit
from tirl.tools.search.index import BM25Index

MAX_BODY_BYTES = 16 << 20
MAX_TOPK = 1000


def document(hit: Hit) -> dict:
    return {"id": hit.id, "title": hit.title, "text": hit.text, "contents": f'"{hit.title}"\n{hit.text}'}


def retrieve(index: BM25Index, body: object, default_topk: int) -> dict:
    """The reply to one ``/retrieve`` body; ValueError names what is wrong with the request."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object with 'queries'")
    queries = body.get("queries")
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise ValueError("'queries' must be a list of strings")
    topk = body.get("topk") or default_topk
    if not isinstance(topk, int) or isinstance(topk, bool) or not 1 <= topk <= MAX_TOPK:
        raise ValueError(f"'topk' must be an integer from 1 to {MAX_TOPK}")
    scores = bool(body.get("return_scores", False))
    result = []
    for hits in index.search(queries, topk):
        result.append([{"document": document(h), "score": h.score} if scores else document(h) for h in hits])
    return {"result": result}


def make_server(index: BM25Index, host: str = "127.0.0.1", port: int = 8000, default_topk: int = 3) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (port 0: a free one; read ``server.server_address``)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a rollout's client reuses its connection

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/") == "/health":
                self._send(200, {"status": "ok", "passages": len(index)})
            else:
                self._send(404, {"error": f"no route {self.path}; POST /retrieve or GET /health"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.rstrip("/") != "/retrieve":
                self._send(404, {"error": f"no route {self.path}; POST /retrieve"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                self._send(413, {"error": f"request body over {MAX_BODY_BYTES} bytes"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"null")
                reply = retrieve(index, body, default_topk)
            except ValueError as e:  # bad JSON or a bad field
                self._send(400, {"error": str(e)})
                return
            self._send(200, reply)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet: one line per request is noise
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
