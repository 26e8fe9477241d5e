"""An asyncio loop in a daemon thread that owns one MCP connection.

The MCP SDK runs each connection inside anyio task groups, which must be entered and left by the
same task on the same loop. tirl calls tools from whatever loop a command runs (the trainer's
runner, ``asyncio.run`` in evaluation, a synchronous start-up), so the connection lives on a loop
of its own: callers submit coroutines to it and wait (``run``) or await the result (``call``).
The same pattern as ``tirl.engine.openai.loop``, kept here because tools sit above the engines
and importing ``tirl.engine`` would load torch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a blocking call from the MCP connection's own loop would deadlock")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop and wait for its result (synchronous callers)."""
        fut = self._submit(coro)
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()  # a timeout or Ctrl-C: stop the coroutine too
            raise

    async def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the loop and await it from the caller's loop (cancelling the caller
        cancels the coroutine)."""
        return await asyncio.wrap_future(self._submit(coro))

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()
