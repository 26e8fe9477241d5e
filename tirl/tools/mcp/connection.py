"""One connection to an MCP server through the official ``mcp`` SDK (``mcp.Client``).

Life cycle: the constructor starts the server (stdio: launches ``command``; HTTP: connects to
``url``), runs the handshake and lists its tools, all within ``startup_timeout_s``; failing
that it raises ``MCPStartError`` (one line, with the server's last stderr line), so a bad
server fails a run before its model loads. The connection is held open by one task on the
connection's own loop (``loop.LoopThread``) until ``close``: the SDK's ``Client`` is entered
and left by that task, as anyio requires, and leaving it stops a stdio server.

Calls: ``call`` sends ``tools/call`` with the per-call timeout. It raises ``CallTimeout`` (the
server did not answer in time), ``CallFailed`` (the server answered with a protocol error, e.g.
unknown arguments) or ``ServerGone`` (the connection was lost, and one reconnection and retry
did not help: tirl's machinery failed, not the model). Tool errors the server reports inside
its result (``is_error``) are results, read by ``MCPTool``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from contextlib import AsyncExitStack
from typing import Any

from tirl.tools.checks import ToolSetupError
from tirl.tools.mcp.config import MCPServerConfig
from tirl.tools.mcp.loop import LoopThread

_CLOSE_WAIT_S = 5.0


class MCPStartError(ToolSetupError):
    """The server could not be started, reached or listed."""


class CallTimeout(Exception):
    pass


class CallFailed(Exception):
    pass


class ServerGone(Exception):
    pass


def root_cause(e: BaseException) -> BaseException:
    """The first leaf of anyio's nested exception groups (the SDK raises through task groups)."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


def describe(e: BaseException) -> str:
    e = root_cause(e)
    text = " ".join(str(e).split())[:300]
    code = getattr(e, "code", None)
    if type(e).__name__ == "MCPError" and isinstance(code, int):
        text = getattr(e, "message", text)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class MCPConnection:
    def __init__(self, cfg: MCPServerConfig, where: str):
        self.cfg = cfg
        self.where = f"{where} ({cfg.label()})"
        self.restarts = 0
        self.users = 0
        self._client: Any = None
        self._holder: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._generation = 0
        self._closed = False
        self._errlog = None
        if cfg.command is not None:
            # the server's stderr: MCP servers log every request there, which would bury the run's
            # own output; kept in a file and quoted when the server fails
            self._errlog = open(cfg.stderr, "a", encoding="utf-8") if cfg.stderr else tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._thread = LoopThread(f"tirl-mcp-{cfg.label()[:40]}")
        try:
            self.remote_tools: list[Any] = self._thread.run(self._open())
        except BaseException:
            self._shutdown_thread()
            raise

    # -- start and stop (on the connection's loop) ------------------------------------------
    def _stderr_tail(self) -> str:
        """The last line the server wrote to stderr that has words in it (read without moving
        the file offset the server writes at)."""
        if self._errlog is None:
            return ""
        try:
            fd = self._errlog.fileno()
            size = os.fstat(fd).st_size
            data = os.pread(fd, min(size, 8192), max(0, size - 8192)).decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        for line in reversed(data.splitlines()):
            line = line.strip(" │╭╮╰╯─\t")
            if any(c.isalpha() for c in line):
                return f"; its stderr ends: {' '.join(line.split())[:200]}"
        return ""

    def _transport(self) -> tuple[Any, Any]:
        """The SDK transport (an async context manager of the two message streams) and, for
        HTTP with headers, the httpx client it uses (ours to close)."""
        cfg = self.cfg
        if cfg.command is not None:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            env = {k: os.path.expandvars(v) for k, v in cfg.env.items()} or None
            params = StdioServerParameters(command=cfg.command[0], args=list(cfg.command[1:]), env=env, cwd=cfg.cwd)
            return stdio_client(params, errlog=self._errlog), None
        from mcp.client.streamable_http import streamable_http_client

        http_client = None
        if cfg.headers:
            from mcp.shared._httpx_utils import create_mcp_http_client

            http_client = create_mcp_http_client(headers={k: os.path.expandvars(v) for k, v in cfg.headers.items()})
        return streamable_http_client(cfg.url, http_client=http_client), http_client

    async def _hold(self, ready: asyncio.Future) -> None:
        """Open the client, list the tools, hand them to ``ready``, then hold the connection
        until ``_stop`` is set (leaving the ``Client`` stops a stdio server)."""
        from mcp import Client

        try:
            async with AsyncExitStack() as stack:
                transport, http_client = self._transport()
                if http_client is not None:
                    await stack.enter_async_context(http_client)
                # cache=None: the tool list is read once per connection, and results are never reused
                client = await stack.enter_async_context(Client(transport, cache=None))
                tools: list[Any] = []
                cursor = None
                while True:
                    page = await client.list_tools(cursor=cursor)
                    tools += page.tools
                    cursor = page.next_cursor
                    if not cursor:
                        break
                self._client = client
                ready.set_result(tools)
                assert self._stop is not None
                await self._stop.wait()
        except BaseException as e:  # noqa: BLE001 - reported through ready, or seen by the next call
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else RuntimeError(describe(e)))
            if isinstance(e, asyncio.CancelledError):
                raise
        finally:
            self._client = None

    async def _open(self) -> list[Any]:
        self._lock = self._lock or asyncio.Lock()
        self._stop = asyncio.Event()
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # read even when no one waits any more
        self._holder = asyncio.create_task(self._hold(ready))
        try:
            return await asyncio.wait_for(asyncio.shield(ready), self.cfg.startup_timeout_s)
        except TimeoutError:
            await self._close_holder(graceful=False)
            raise MCPStartError(
                f"{self.where}: the MCP server did not start and list its tools within startup_timeout_s={self.cfg.startup_timeout_s:g} s"
                + self._stderr_tail()
            ) from None
        except Exception as e:  # noqa: BLE001 - any start failure is the user's to fix: one line
            await self._close_holder(graceful=False)
            why = describe(e)
            if why.endswith("Connection closed"):
                why = "it closed the connection before listing its tools; did it exit?"
            raise MCPStartError(f"{self.where}: cannot start the MCP server ({why}){self._stderr_tail()}") from None

    async def _close_holder(self, graceful: bool = True) -> None:
        """End the holder task: ``graceful`` lets it leave the ``Client`` (a stdio server sees its
        input close and exits); otherwise, or when that hangs, it is cancelled (the SDK then
        terminates the server process)."""
        holder, self._holder = self._holder, None
        if holder is None:
            return
        if self._stop is not None:
            self._stop.set()
        done = set()
        if graceful:
            done, _ = await asyncio.wait([holder], timeout=_CLOSE_WAIT_S)
        if not done:  # stuck in a handshake or a shutdown: cancel it
            holder.cancel()
            await asyncio.wait([holder], timeout=_CLOSE_WAIT_S)

    async def _reconnect(self, generation: int) -> None:
        assert self._lock is not None
        async with self._lock:
            if generation != self._generation and self._client is not None:
                return  # another call reconnected meanwhile
            await self._close_holder()
            self._generation += 1
            self.restarts += 1
            try:
                await self._open()
            except MCPStartError as e:
                raise ServerGone(str(e)) from None

    # -- calls --------------------------------------------------------------------------------
    async def _call(self, name: str, arguments: dict[str, Any], timeout_s: float) -> Any:
        from mcp import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        lost: BaseException | None = None
        for attempt in range(2):
            generation = self._generation
            if self._client is None:
                await self._reconnect(generation)
                generation = self._generation
            client = self._client
            if client is None:
                raise ServerGone(f"{self.where}: the connection is closed")
            try:
                # the SDK's read timeout answers first; wait_for only guards a transport that hangs
                return await asyncio.wait_for(client.call_tool(name, arguments, read_timeout_seconds=timeout_s), timeout_s + _CLOSE_WAIT_S)
            except TimeoutError:
                raise CallTimeout() from None
            except MCPError as e:
                if e.code == REQUEST_TIMEOUT:
                    raise CallTimeout() from None
                if e.code != CONNECTION_CLOSED:
                    raise CallFailed(e.message) from None
                lost = e
            except Exception as e:  # noqa: BLE001 - a transport failure (HTTP connection refused, a broken stream)
                lost = e
            if attempt == 0:
                await self._reconnect(generation)
        raise ServerGone(f"{self.where}: {describe(lost) if lost else 'connection lost'}")

    async def call(self, name: str, arguments: dict[str, Any], timeout_s: float) -> Any:
        """``tools/call`` on the server; see the module docstring for what it raises."""
        if self._closed:
            raise ServerGone(f"{self.where}: the connection was closed")
        return await self._thread.call(self._call(name, arguments, timeout_s))

    # -- close --------------------------------------------------------------------------------
    def _shutdown_thread(self) -> None:
        self._thread.stop()
        if self._errlog is not None:
            self._errlog.close()
            self._errlog = None

    def close(self) -> None:
        """Stop the server (stdio) or end the session (HTTP); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._thread.run(self._close_holder(), timeout=3 * _CLOSE_WAIT_S)
        except Exception:  # noqa: BLE001 - closing is best effort; the loop goes away anyway
            pass
        self._shutdown_thread()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._thread.call(self._close_holder()), 3 * _CLOSE_WAIT_S)
        except Exception:  # noqa: BLE001 - best effort, as in close
            pass
        self._shutdown_thread()

    async def release(self) -> None:
        """One tool of this connection is done; the last one closes it."""
        self.users -= 1
        if self.users <= 0:
            await self.aclose()
