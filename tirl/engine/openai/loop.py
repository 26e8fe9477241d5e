"""A private event loop in a daemon thread, so OpenAIEngine's async HTTP serves callers of any kind.

The httpx client, the concurrency limit and the cached server facts live on this one loop, so
sync callers from any thread share one connection pool and one limit. ``run`` is for
synchronous callers (any thread, including one inside a running event loop: the agent loop calls
``engine.generate`` from a coroutine, and that thread waits); ``call`` is for coroutines and does
not block the caller's loop. The thread starts on first use and ends with ``close`` or when the
engine is forgotten.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class EngineLoop:
    """Runs coroutines on the private loop; ``name`` names its thread."""

    def __init__(self, name: str = "tirl-openai-engine") -> None:
        self._name = name
        self._runner: _LoopThread | None = None
        self._closed = False
        self._start_lock = threading.Lock()

    def _loop(self) -> _LoopThread:
        with self._start_lock:
            if self._closed:
                raise RuntimeError("openai engine: used after close()")
            if self._runner is None:
                self._runner = _LoopThread(self._name)
            return self._runner

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the loop and wait for it (a synchronous caller)."""
        try:
            runner = self._loop()
        except BaseException:
            coro.close()
            raise
        if threading.current_thread() is runner.thread:
            coro.close()
            raise RuntimeError("openai engine: a sync call from the engine's own event loop would deadlock; await agenerate/achat instead")
        fut = runner.submit(coro)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()  # e.g. KeyboardInterrupt: stop the requests still in flight
            raise

    async def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the loop and await it from the caller's loop."""
        try:
            runner = self._loop()
        except BaseException:
            coro.close()
            raise
        if threading.current_thread() is runner.thread:
            return await coro
        return await asyncio.wrap_future(runner.submit(coro))

    def close(self, before_stop: Callable[[], Awaitable[None]] | None = None) -> None:
        """Stop the loop for good, first running ``before_stop()`` on it (closing connections,
        best effort, at most 5 s); later ``run``/``call`` raise."""
        with self._start_lock:
            self._closed = True
            runner, self._runner = self._runner, None
        if runner is None:
            return
        if threading.current_thread() is runner.thread:
            runner.loop.stop()  # closing from inside the loop: no waiting on ourselves
            return
        if before_stop is not None:
            try:
                runner.submit(before_stop()).result(timeout=5)
            except Exception:  # noqa: BLE001 - closing is best effort; the loop goes away anyway
                pass
        runner.stop()

    def __del__(self) -> None:
        # a forgotten engine must not leave its thread behind; no waiting here (this may run on
        # any thread, the loop's own included)
        runner = self._runner
        if runner is not None and runner.loop.is_running():
            runner.loop.call_soon_threadsafe(runner.loop.stop)


async def gather_or_cancel(coros: list) -> list:
    """Run all; on the first failure cancel the rest (no requests left running) and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
