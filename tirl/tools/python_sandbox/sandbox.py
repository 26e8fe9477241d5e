"""The ``python`` tool: run the model's code in a pool of persistent, isolated workers.

Design (DESIGN.md, "Tools and the sandbox"; ALGORITHMS.md §1 for what the model reads):

- ``workers`` long-lived worker processes (bubblewrap where it works), each forking one
  process chain per session, so a call costs two pipe round trips and no interpreter start.
- A session (one trajectory) is pinned to the worker with the fewest sessions on its first
  call; its variables persist across calls (notebook semantics) and no other session sees
  them. ``close_session`` ends it.
- Limits, timeouts, crash reports and reaping live in the worker (``guest.zygote``); worker
  death and replacement in ``worker.WorkerSlot``. Nothing the model's code does raises here:
  every outcome is an :class:`~tirl.types.Observation`.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from tirl.types import Observation, ToolCall

from .config import SandboxConfig
from .guest.outcomes import LOST
from .launcher import launch_spec, resolve_isolation
from .worker import WorkerSlot

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Run Python code in a persistent sandboxed interpreter. Variables persist between calls. "
    "The value of the last expression is printed; use print() for anything else. "
    "No network access; only /tmp is writable."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"code": {"type": "string", "description": "Python source to execute"}},
    "required": ["code"],
}

_LIVE: weakref.WeakSet[PythonSandbox] = weakref.WeakSet()
_said_not_isolated: list[bool] = []  # log the isolation="none" warning once per process


@atexit.register
def _close_all() -> None:
    for sandbox in list(_LIVE):
        sandbox.close()


class PythonSandbox:
    """Tool ``python`` (main argument ``code``). See the module docstring."""

    name = "python"
    main_arg = "code"
    description = DESCRIPTION
    parameters = PARAMETERS

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        """``PythonSandbox(SandboxConfig(workers=4))`` or ``PythonSandbox(workers=4)``.
        Raises ``SandboxUnavailable`` only when ``isolation="bwrap"`` is forced and fails."""
        self.config = replace(config or SandboxConfig(), **overrides)
        self.config.validate()
        self.isolation = resolve_isolation(self.config)
        if self.config.isolation == "none" and not _said_not_isolated:
            _said_not_isolated.append(True)
            log.warning("tirl python sandbox: isolation='none': the model's code is not isolated from this machine")
        self._lock = threading.Lock()
        self._pins: OrderedDict[str, int] = OrderedDict()  # session -> slot index
        self._generation: dict[str, int] = {}  # session -> worker generation of its last reply
        self._closed = False
        self._slots = [
            WorkerSlot(i, lambda: launch_spec(self.config, self.isolation), self.config.startup_timeout_s) for i in range(self.config.workers)
        ]
        _LIVE.add(self)

    # --- pinning --------------------------------------------------------------------------
    def _slot_for(self, session: str) -> WorkerSlot:
        with self._lock:
            index = self._pins.get(session)
            if index is None:
                load = [0] * len(self._slots)
                for i in self._pins.values():
                    load[i] += 1
                index = min(range(len(self._slots)), key=lambda i: load[i])
                self._pins[session] = index
                # Forgotten sessions: the workers evict them anyway; keep this map bounded.
                cap = 4 * self.config.workers * self.config.max_sessions_per_worker
                while len(self._pins) > cap:
                    old, _ = self._pins.popitem(last=False)
                    self._generation.pop(old, None)
            else:
                self._pins.move_to_end(session)
            return self._slots[index]

    def _observation(self, session: str, reply: dict[str, Any], started: float) -> Observation:
        output = str(reply.get("output", ""))
        generation = reply.get("generation")
        with self._lock:
            previous = self._generation.get(session)
            if session in self._pins:
                self._generation[session] = generation
        if previous is not None and generation != previous and not reply.get("infra_error"):
            output = f"[note: the sandbox worker was restarted; {LOST}]\n" + output
        return Observation(
            ok=bool(reply.get("ok")),
            output=output,
            error=reply.get("error"),
            timed_out=bool(reply.get("timed_out")),
            latency_ms=(time.perf_counter() - started) * 1000.0,
            infra_error=bool(reply.get("infra_error")),
        )

    def _submit(self, code: str, session: str, timeout_s: float | None):
        timeout = float(timeout_s) if timeout_s is not None else self.config.timeout_s
        message = {"op": "run", "session": session, "code": code, "timeout_s": timeout}
        return self._slot_for(session).submit(message, timeout)

    @staticmethod
    def _bad_call(call: ToolCall) -> Observation | None:
        if call.error:
            return Observation(ok=False, output=call.error, error="MalformedCall")
        code = call.arguments.get("code") if isinstance(call.arguments, dict) else None
        if not isinstance(code, str):
            return Observation(
                ok=False,
                output="error: the python tool takes one string argument, 'code'",
                error="MalformedCall",
            )
        return None

    def _closed_observation(self) -> Observation:
        return Observation(ok=False, output="sandbox error: the sandbox is closed", error="SandboxError", infra_error=True)

    # --- the Tool protocol ----------------------------------------------------------------
    async def run(self, call: ToolCall, session: str) -> Observation:
        bad = self._bad_call(call)
        if bad is not None:
            return bad
        return await self.run_code(call.arguments["code"], session)

    async def run_code(self, code: str, session: str = "default", timeout_s: float | None = None) -> Observation:
        """Like ``run`` with the code given directly; ``timeout_s`` overrides the default."""
        if self._closed:
            return self._closed_observation()
        started = time.perf_counter()
        try:
            reply = await asyncio.wrap_future(self._submit(code, session, timeout_s))
        except RuntimeError:  # closed while queued
            return self._closed_observation()
        return self._observation(session, reply, started)

    def run_sync(self, code: str, session: str = "default", timeout_s: float | None = None) -> Observation:
        """Blocking convenience for scripts, the CLI and tests (any thread, no event loop)."""
        if self._closed:
            return self._closed_observation()
        started = time.perf_counter()
        try:
            reply = self._submit(code, session, timeout_s).result()
        except RuntimeError:
            return self._closed_observation()
        return self._observation(session, reply, started)

    def _close_session_future(self, session: str):
        with self._lock:
            index = self._pins.pop(session, None)
            self._generation.pop(session, None)
        if index is None or self._closed:
            return None
        return self._slots[index].submit({"op": "close", "session": session}, 10.0, retry=False)

    async def close_session(self, session: str) -> None:
        future = self._close_session_future(session)
        if future is not None:
            try:
                await asyncio.wrap_future(future)
            except RuntimeError:
                pass

    def close_session_sync(self, session: str) -> None:
        future = self._close_session_future(session)
        if future is not None:
            try:
                future.result()
            except RuntimeError:
                pass

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        """Stop every worker (their sessions die with them). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            slot.close(timeout_s=0)
        for slot in self._slots:
            slot.close()
        _LIVE.discard(self)

    # --- introspection and context managers -----------------------------------------------
    def worker_pids(self) -> list[int | None]:
        """Process ids of the live workers (bubblewrap's, when isolated)."""
        return [slot.pid for slot in self._slots]

    def __enter__(self) -> PythonSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> PythonSandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass
