"""Host side of one worker: the process, its I/O thread, replacement after a death.

Each :class:`WorkerSlot` owns a thread that does all of its worker's pipe I/O, one request
at a time (this is the per-worker lock). Callers get a ``concurrent.futures.Future``, which
asyncio code awaits with ``asyncio.wrap_future``: the event loop never blocks on a pipe, and
the pool is not tied to any one event loop (tests and ``run_sync`` use several).

The thread also starts the worker process, which matters on Linux: PR_SET_PDEATHSIG (set by
bubblewrap's ``--die-with-parent`` or by the worker itself) fires when the *thread* that
forked it exits, and this thread lives exactly as long as the slot.

When the worker dies or stops answering, the slot kills it, starts a new one and retries the
request once (a run's retry is on a fresh worker, so its session state is gone; the reply
carries the worker's generation so the caller can say so). A second failure is answered
with ``infra_error`` (DESIGN.md invariant 5: never scored as the model's fault).
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from .guest import session as guest_session
from .guest import wire
from .launcher import LaunchSpec

# A reply may take a cell's timeout plus starting its session (twice, if namespaces have to
# be turned off) before the host declares the worker hung.
_REPLY_SLACK_S = 2 * guest_session.SETUP_TIMEOUT_S + 5.0


class WorkerStartError(RuntimeError):
    """A worker process could not be started: an infrastructure failure."""


class WorkerProcess:
    """One running worker (``guest.zygote``) and its pipes."""

    def __init__(self, spec: LaunchSpec, startup_timeout_s: float) -> None:
        self.spec = spec
        self._stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=spec.env or None,
                cwd=spec.cwd,
                close_fds=True,
                start_new_session=True,  # a terminal's Ctrl-C goes to the host only
                bufsize=0,
            )
        except OSError as exc:
            self._cleanup()
            raise WorkerStartError(f"cannot start the sandbox worker: {exc}") from exc
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._to = self.proc.stdin.fileno()
        self._from = self.proc.stdout.fileno()
        try:
            hello = wire.read_frame(self._from, time.monotonic() + startup_timeout_s)
        except (wire.Closed, wire.Timeout, OSError, ValueError) as exc:
            detail = self.stderr_tail()
            self.kill()
            raise WorkerStartError(f"the sandbox worker did not start ({exc}): {detail}") from None
        if not hello.get("ready"):
            self.kill()
            raise WorkerStartError(f"the sandbox worker could not start a session: {hello.get('error')}")
        self.pid = self.proc.pid
        self.namespaces = bool(hello.get("namespaces"))
        self.preload_errors: list[str] = list(hello.get("preload_errors") or [])

    def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        wire.write_frame(self._to, message)
        reply = wire.read_frame(self._from, time.monotonic() + timeout_s)
        if not isinstance(reply, dict):
            raise ValueError(f"malformed reply {reply!r:.200}")
        return reply

    def stderr_tail(self, chars: int = 2000) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - chars))
            return self._stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate_now(self) -> None:
        """SIGKILL its process group at once (the pool is closing while a cell still runs);
        the slot's thread then sees the pipe close and reaps it with ``kill``."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def kill(self) -> None:
        """Close its stdin (it then ends its sessions and exits), SIGKILL its process group
        if it lingers, reap it, delete its directory."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.kill()
            self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        try:
            self._stderr.close()
        except OSError:
            pass
        if self.spec.tmp_dir:
            shutil.rmtree(self.spec.tmp_dir, ignore_errors=True)
        if self.spec.cap is not None:
            self.spec.cap.remove()


_Job = tuple[concurrent.futures.Future, dict[str, Any], float, bool]


class WorkerSlot:
    """A place in the pool: keeps one worker alive and feeds it requests in order."""

    def __init__(self, index: int, make_spec: Callable[[], LaunchSpec], startup_timeout_s: float) -> None:
        self.index = index
        self.generation = 0  # bumped whenever the worker is replaced
        self._make_spec = make_spec
        self._startup_timeout_s = startup_timeout_s
        self._proc: WorkerProcess | None = None
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._busy: WorkerProcess | None = None  # the worker while it runs a request
        self._submit_lock = threading.Lock()
        self.last_start_error: str | None = None
        self._thread = threading.Thread(target=self._loop, name=f"tirl-sandbox-worker-{index}", daemon=True)
        self._thread.start()

    def submit(self, message: dict[str, Any], timeout_s: float, retry: bool = True) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._submit_lock:  # nothing may be queued behind the close marker
            if self._closed:
                future.set_exception(RuntimeError("the sandbox is closed"))
            else:
                self._queue.put((future, message, timeout_s, retry))
        return future

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop after the queued requests; a cell still running when the pool closes is not
        waited for (Ctrl-C on a long cell exits at once): its worker is killed."""
        with self._submit_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)
            proc = self._busy
        if proc is not None:
            proc.terminate_now()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # --- the slot's thread ----------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._start()  # eagerly, so the first call does not pay the start-up
        except WorkerStartError:
            pass
        while True:
            job = self._queue.get()
            if job is None:
                break
            future, message, timeout_s, retry = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._handle(message, timeout_s, retry))
            except BaseException as exc:  # pragma: no cover - _handle answers every failure
                future.set_exception(exc)
        self._stop()

    def _start(self) -> WorkerProcess:
        if self._proc is not None and self._proc.alive():
            return self._proc
        if self._proc is not None:
            self._stop()
        try:
            self._proc = WorkerProcess(self._make_spec(), self._startup_timeout_s)
        except WorkerStartError as exc:
            self.last_start_error = str(exc)
            raise
        except Exception as exc:  # making the spec failed (e.g. no temporary directory)
            self.last_start_error = repr(exc)
            raise WorkerStartError(repr(exc)) from exc
        self.last_start_error = None
        return self._proc

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc = None
            self.generation += 1

    def _handle(self, message: dict[str, Any], timeout_s: float, retry: bool) -> dict[str, Any]:
        if message.get("op") == "close" and (self._proc is None or not self._proc.alive()):
            return {"ok": True, "generation": self.generation}  # its state died with the worker
        problem = ""
        for attempt in range(2 if retry else 1):
            if attempt and self._closed:
                problem = "the sandbox closed while the cell ran"
                break
            try:
                proc = self._start()
            except WorkerStartError as exc:
                problem = str(exc)
                continue
            try:
                with self._submit_lock:
                    self._busy = proc
                if self._closed and message.get("op") != "close":
                    raise wire.Closed("the sandbox is closing")
                reply = proc.request(message, timeout_s + _REPLY_SLACK_S)
            except (wire.Closed, wire.Timeout, OSError, ValueError) as exc:
                problem = f"the sandbox worker died ({type(exc).__name__}: {exc}) {proc.stderr_tail(500)}".strip()
                self._stop()
                continue
            finally:
                with self._submit_lock:
                    self._busy = None
            reply["generation"] = self.generation
            return reply
        return {
            "ok": False,
            "output": f"sandbox error: {problem}",
            "error": "SandboxError",
            "infra_error": True,
            "generation": self.generation,
        }
