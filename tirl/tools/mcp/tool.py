"""``MCPTool``: one tool of an MCP server, offered to the model like any tirl tool.

The server's listing becomes the tool spec: its name (with the configured prefix; characters a
tag cannot carry become ``_``), its description, and its input schema as ``parameters`` (what
the Hermes protocol shows). A call sends the arguments to the server; what comes back becomes
the observation:

- the result's content blocks, joined by newlines: text as is, an embedded text resource as its
  text, images, audio, blobs and resource links as a short ``[image image/png, 1234 bytes]``
  placeholder; structured content as JSON when there is no content; ``(no output)`` when empty;
  cut at ``max_output_chars`` with a ``...[truncated N chars]`` marker;
- a result the server marks ``is_error`` (the tool raised): ``ok=False``, the error text;
- a protocol error (unknown or bad arguments): ``ok=False``, the server's message;
- no answer within ``timeout_s``: ``ok=False, timed_out=True``;
- a lost connection that one reconnection does not mend: ``infra_error=True`` (the trajectory
  is dropped and counted, never scored; docs/DESIGN.md, invariant 5).

MCP has no per-trajectory state in tirl's sense: all trajectories share the server, and whatever
state it keeps is its own (``close_session`` does nothing).
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

from tirl.tools.mcp.config import MCPServerConfig
from tirl.tools.mcp.connection import CallFailed, CallTimeout, MCPConnection, ServerGone
from tirl.types import Observation, ToolCall

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def tag_safe(name: str) -> str:
    """A tool name both protocols can carry (``tirl.tools.checks.TOOL_NAME``)."""
    safe = _UNSAFE.sub("_", name)[:64]
    return safe if safe[:1].isalpha() or safe[:1] == "_" else ("_" + safe)[:64]


def _is_string(prop: Any) -> bool:
    t = prop.get("type") if isinstance(prop, dict) else None
    return t == "string" or (isinstance(t, list) and "string" in t)


def main_arg_for(schema: dict[str, Any]) -> str:
    """The argument a tag protocol writes between the tool's tags, by one documented rule:

    1. the tool's one required argument, when it is a string (``search(query, topk=3)`` ->
       ``query``: ``<search>capital of Peru</search>``; the optional ones take the server's
       defaults);
    2. with no required argument, the one argument, when the tool has exactly one and it is a
       string;
    3. otherwise ``""``: the text between the tags is a JSON object of all the arguments
       (``<add>{"a": 1, "b": 2}</add>``; ``<now></now>`` for a tool without arguments).

    ``tools.mcp[i].main_args`` overrides it per tool.
    """
    props = schema.get("properties") or {}
    required = [k for k in (schema.get("required") or []) if k in props]
    if len(required) == 1 and _is_string(props[required[0]]):
        return required[0]
    if not required and len(props) == 1:
        (only,) = props
        if _is_string(props[only]):
            return only
    return ""


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return block.text
    if kind in ("image", "audio"):
        return f"[{kind} {block.mime_type}, {len(base64.b64decode(block.data, validate=False))} bytes]"
    if kind == "resource":
        res = block.resource
        text = getattr(res, "text", None)
        return text if isinstance(text, str) else f"[resource {res.uri}, {getattr(res, 'mime_type', None) or 'binary'}]"
    if kind == "resource_link":
        return f"[resource {block.uri}]"
    return f"[{kind or type(block).__name__}]"


def result_text(result: Any) -> str:
    parts = [_block_text(b) for b in (result.content or [])]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def clip(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f"...[truncated {len(text) - max_chars} chars]"


class MCPTool:
    def __init__(self, conn: MCPConnection, remote: Any, cfg: MCPServerConfig, main_arg: str):
        self.conn = conn
        self.remote_name: str = remote.name
        self.name = tag_safe(cfg.prefix + remote.name)
        self.description = " ".join((remote.description or getattr(remote, "title", None) or f"the {remote.name} tool of an MCP server").split())
        schema = dict(remote.input_schema or {})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        self.parameters: dict[str, Any] = schema
        self.main_arg = main_arg
        self.timeout_s = cfg.timeout_s
        self.max_output_chars = cfg.max_output_chars
        self._closed = False

    async def run(self, call: ToolCall, session: str) -> Observation:
        t0 = time.perf_counter()

        def obs(**kw: Any) -> Observation:
            return Observation(latency_ms=(time.perf_counter() - t0) * 1e3, **kw)

        try:
            result = await self.conn.call(self.remote_name, dict(call.arguments), self.timeout_s)
        except CallTimeout:
            return obs(ok=False, output=f"Error: {self.name} did not answer within {self.timeout_s:g} s", error="TimeoutError", timed_out=True)
        except CallFailed as e:
            return obs(ok=False, output=clip(f"Error: {e}", self.max_output_chars), error="MCPError")
        except ServerGone as e:
            return obs(ok=False, output=f"Error: the MCP server of {self.name} is unavailable ({e})", error="MCPServerGone", infra_error=True)
        text = clip(result_text(result), self.max_output_chars)
        if result.is_error:
            return obs(ok=False, output=text if text.lower().startswith("error") else f"Error: {text or 'the tool failed'}", error="ToolError")
        return obs(ok=True, output=text if text.strip() else "(no output)")

    async def close_session(self, session: str) -> None:
        return None

    async def aclose(self) -> None:
        if not self._closed:  # once per tool, so closing a tool twice never closes the others' connection
            self._closed = True
            await self.conn.release()
