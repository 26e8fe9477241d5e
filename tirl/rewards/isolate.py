"""Run a named function in killable worker processes, with a deadline per call.

Why processes and not threads: a verifier fed model output can be asked to evaluate
``9^{9^{9}}``. SymPy then spends minutes inside one C-level big-integer operation that
holds the GIL, so neither a worker thread's deadline nor math-verify's own SIGALRM timeout
can interrupt it (the signal handler only runs between bytecodes, and on the main thread
only). A separate process can always be killed. ALGORITHMS.md §1 asks for math-verify's
own timeouts to be disabled and a timeout enforced by tirl; this module is that timeout.

A worker is ``python -m tirl.rewards.isolate module:function``. It imports the target once
(so heavy imports are paid at start-up, not per call), then answers length-prefixed pickled
requests ``args -> fn(*args)`` on its stdin/stdout. The parent:

- hands each call to an idle worker (starting one if fewer than ``max_workers`` are alive,
  otherwise waiting for one; the wait does not count against the call's deadline),
- waits for the reply up to ``timeout_s``; on timeout it kills and reaps the worker (a fresh
  one is started on demand) and reports ``CallStatus.TIMEOUT``,
- reports ``CallStatus.CRASH`` when the worker died mid-call and ``CallStatus.ERROR`` when the
  function raised (the worker survives an exception).

Callers may be on any thread. Workers get the parent's ``sys.path``. A worker never outlives
its parent for long: when the parent exits its stdin closes (an idle worker leaves at once),
and before each call the worker lowers its own CPU-time limit (``RLIMIT_CPU``) to the call's
deadline plus a margin, so the kernel ends a computation nobody is waiting for any more.
(``PR_SET_PDEATHSIG`` is not used: it fires when the *thread* that started the worker exits,
which would kill workers shared between threads.) POSIX only.
"""

from __future__ import annotations

import atexit
import enum
import importlib
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

_HEADER = struct.Struct("!I")  # 4-byte big-endian length prefix
_READY = b"ready"
CPU_MARGIN_S = 10.0  # the worker's own CPU limit per call: deadline * 2 + this


class WorkerStartError(RuntimeError):
    """A worker process could not be started (an infrastructure failure, never the input's fault)."""


class CallStatus(str, enum.Enum):
    OK = "ok"
    ERROR = "error"  # the function raised; ``value`` is the exception's repr
    TIMEOUT = "timeout"  # no reply before the deadline; the worker was killed
    CRASH = "crash"  # the worker died during the call


@dataclass(frozen=True)
class CallResult:
    status: CallStatus
    value: Any = None
    seconds: float = 0.0


class _Deadline(Exception):
    pass


class _Worker:
    """One worker process and its pipes. Used by one calling thread at a time."""

    def __init__(self, target: str, startup_timeout_s: float) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tirl.rewards.isolate", target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # a worker's traceback goes to our stderr, where a user can see it
            env=env,
            close_fds=True,
        )
        try:
            ready = self._read(time.monotonic() + startup_timeout_s)
        except (_Deadline, EOFError) as e:
            self.kill()
            raise WorkerStartError(f"verifier worker for {target!r} did not start within {startup_timeout_s:.0f}s ({type(e).__name__})") from None
        if ready != _READY:
            self.kill()
            raise WorkerStartError(f"verifier worker for {target!r} failed to start: {ready!r}")

    def call(self, args: tuple[Any, ...], timeout_s: float) -> CallResult:
        start = time.monotonic()
        try:
            payload = pickle.dumps((timeout_s, args), protocol=pickle.HIGHEST_PROTOCOL)
            assert self.proc.stdin is not None
            self.proc.stdin.write(_HEADER.pack(len(payload)) + payload)
            self.proc.stdin.flush()
            ok, value = pickle.loads(self._read(start + timeout_s))
        except _Deadline:
            self.kill()
            return CallResult(CallStatus.TIMEOUT, None, time.monotonic() - start)
        except (EOFError, BrokenPipeError, OSError, pickle.UnpicklingError):
            self.kill()
            return CallResult(CallStatus.CRASH, None, time.monotonic() - start)
        status = CallStatus.OK if ok else CallStatus.ERROR
        return CallResult(status, value, time.monotonic() - start)

    def _read(self, deadline: float) -> bytes:
        header = self._read_exact(_HEADER.size, deadline)
        (n,) = _HEADER.unpack(header)
        return self._read_exact(n, deadline)

    def _read_exact(self, n: int, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        chunks: list[bytes] = []
        got = 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Deadline()
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                raise _Deadline()
            chunk = os.read(fd, n - got)
            if not chunk:
                raise EOFError("worker closed its output")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()  # reap: no zombies
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass

    def close(self) -> None:
        """Ask politely (EOF on stdin), then kill if it does not leave at once."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=1.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class IsolatedCaller:
    """Calls ``module:function`` in up to ``max_workers`` worker processes, each call with a deadline.

    Thread-safe. Workers start lazily on first use and are reused across calls.
    """

    def __init__(self, target: str, max_workers: int = 2, startup_timeout_s: float = 120.0) -> None:
        if ":" not in target:
            raise ValueError(f"target must look like 'package.module:function', got {target!r}")
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.target = target
        self.max_workers = max_workers
        self.startup_timeout_s = startup_timeout_s
        self._idle: list[_Worker] = []
        self._n_alive = 0  # idle + in use (+ starting)
        self._cond = threading.Condition()
        self._closed = False
        self._pid = os.getpid()
        atexit.register(self.close)

    def call(self, args: tuple[Any, ...], timeout_s: float) -> CallResult:
        worker = self._acquire()
        result = worker.call(args, timeout_s)
        self._release(worker)
        return result

    def _acquire(self) -> _Worker:
        if os.getpid() != self._pid:  # we are a forked child: the pipes belong to the parent
            self._idle, self._n_alive, self._cond, self._pid = [], 0, threading.Condition(), os.getpid()
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError(f"IsolatedCaller({self.target!r}) is closed")
                while self._idle:
                    w = self._idle.pop()
                    if w.alive:
                        return w
                    w.kill()
                    self._n_alive -= 1
                if self._n_alive < self.max_workers:
                    self._n_alive += 1  # reserve the slot; start outside the lock
                    break
                self._cond.wait()
        try:
            return _Worker(self.target, self.startup_timeout_s)
        except BaseException:
            with self._cond:
                self._n_alive -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                worker.kill()
                self._n_alive -= 1
            self._cond.notify()

    def close(self) -> None:
        """Stop idle workers; workers in use are stopped when their call returns."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._n_alive -= len(idle)
            self._cond.notify_all()
        for w in idle:
            w.close()

    @property
    def n_workers(self) -> int:
        with self._cond:
            return self._n_alive


# ---------------------------------------------------------------------------------------------
# Worker side


def _limit_cpu(seconds: float) -> None:
    """Let the kernel stop this process after ``seconds`` more CPU time (SIGXCPU; no core file)."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ImportError, ValueError, OSError):
        pass


def _worker_main(target: str) -> None:
    # Keep the real stdout for the protocol; anything the target prints goes to stderr.
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    proto_in = sys.stdin.buffer

    def send(obj: bytes) -> None:
        proto_out.write(_HEADER.pack(len(obj)) + obj)

    def recv_exact(n: int) -> bytes:
        buf = proto_in.read(n)
        if buf is None or len(buf) < n:
            raise EOFError
        return buf

    module_name, _, attr = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except Exception as e:  # report instead of dying silently
        send(f"cannot load {target}: {e!r}".encode())
        return
    send(_READY)
    while True:
        try:
            (n,) = _HEADER.unpack(recv_exact(_HEADER.size))
            timeout_s, args = pickle.loads(recv_exact(n))
        except EOFError:
            return
        _limit_cpu(2 * timeout_s + CPU_MARGIN_S)
        try:
            reply = (True, fn(*args))
        except Exception as e:
            reply = (False, repr(e))
        try:
            payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            payload = pickle.dumps((False, f"unpicklable result: {e!r}"))
        send(payload)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tirl.rewards.isolate package.module:function")
    _worker_main(sys.argv[1])
