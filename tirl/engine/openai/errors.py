"""The one error an OpenAI-compatible server's failures become, and how a reply is quoted in it."""

from __future__ import annotations


class OpenAIEngineError(RuntimeError):
    """A request to an OpenAI-compatible server failed; the message names the URL, the HTTP
    status (when there was a reply) and the start of the server's reply."""

    def __init__(self, message: str, url: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.url = url
        self.status = status
        self.body = body


def snippet(text: str, n: int = 300) -> str:
    """The start of a reply, on one line, for an error message."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "…"
