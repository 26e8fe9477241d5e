"""The worker process: a long-lived Python that forks one process chain per session.

It starts once (inside bubblewrap when available), imports what the sessions should find
preloaded, then serves requests from the host on its stdin/stdout (``wire`` frames):

    {"op": "run", "session": str, "code": str, "timeout_s": float?}  -> cell reply
    {"op": "close", "session": str}                                 -> {"ok": true}
    {"op": "ping"}                                                   -> {"ok": true, ...}

It enforces the wall-clock limit (the cell's reply must arrive before the deadline, else the
session is SIGKILLed and reaped), turns a session's death into an observation (crash,
segfault, CPU limit, ``os._exit``), evicts the least recently used session beyond
``max_sessions``, and keeps one session forked ahead so a new trajectory's first call does
not wait for the fork. Single-threaded on purpose: it forks, and forking a threaded process
is unsafe.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from collections import OrderedDict
from typing import Any

from . import linux, session, wire
from .outcomes import LOST, cell_reply, describe_exit, protocol_violation_reply, timeout_reply
from .settings import GuestSettings


class Zygote:
    def __init__(self, settings: GuestSettings, host_in: int, host_out: int) -> None:
        self.settings = settings
        self.host_in = host_in
        self.host_out = host_out
        self.sessions: OrderedDict[str, session.Handle] = OrderedDict()
        self.evicted: OrderedDict[str, None] = OrderedDict()  # keys whose state we dropped
        self.spare: session.Handle | None = None
        self.serial = 0
        self.ended = False  # a session was killed since the last sweep for orphans
        self.orphans_come_here = False  # a session runs without its own PID namespace

    # --- sessions -------------------------------------------------------------------------
    def _launch(self) -> session.Handle:
        self.serial += 1
        return session.launch(self.settings, self.serial)

    def _ready(self, handle: session.Handle) -> session.Handle:
        """Finish starting a session; if it fails twice with namespaces and works without,
        run later sessions without them (an unusual kernel or security policy)."""
        try:
            return session.wait_ready(handle)
        except session.SessionError:
            self.ended = True
            if not self.settings.session_namespaces:
                return self._launch()
        try:
            return self._launch()
        except session.SessionError as exc:
            self.settings.session_namespaces = False
            handle = self._launch()
            print(f"tirl sandbox: per-session namespaces do not work ({exc}); continuing without", file=sys.stderr)
            return handle

    def _take_session(self) -> session.Handle:
        if self.spare is not None:
            handle, self.spare = self.spare, None
            return self._ready(handle)
        self.serial += 1
        return self._ready(session.start(self.settings, self.serial))

    def _start_spare(self) -> None:
        if self.spare is None:
            self.serial += 1
            try:
                self.spare = session.start(self.settings, self.serial)
            except OSError:  # fork failed (EAGAIN): try again after the next request
                pass

    def _end(self, handle: session.Handle) -> int | None:
        """Kill a session. Its reaper is then re-parented to us and reaped by the next sweep."""
        self.ended = True
        return session.terminate(handle)

    def _drop(self, key: str) -> None:
        handle = self.sessions.pop(key, None)
        if handle is not None:
            self._end(handle)

    def _evict_beyond_limit(self) -> None:
        while len(self.sessions) > self.settings.max_sessions:
            key, handle = self.sessions.popitem(last=False)
            self._end(handle)
            self.evicted[key] = None
            if len(self.evicted) > 4 * self.settings.max_sessions:
                self.evicted.popitem(last=False)

    def _reap_orphans(self) -> None:
        """Kill and reap our children that are not sessions. We are a child subreaper, so a
        killed session's reaper (and, without PID namespaces, a cell's orphaned children)
        are re-parented to us."""
        self.ended = False
        known = {h.leader for h in self.sessions.values()}
        if self.spare is not None:
            known.add(self.spare.leader)
        children = _children()
        if children is None:  # no /proc/<pid>/task/<tid>/children: reap what already exited
            while True:
                try:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    return
                if pid == 0:
                    return
        doomed = [pid for pid in children if pid not in known]
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in doomed:
            _reap(pid, session.KILL_WAIT_S)

    def _reap_exited(self) -> None:
        """Reap children that exited and are not sessions: without PID namespaces, the
        processes a cell forked are re-parented to us when their parent dies."""
        known = {h.leader for h in self.sessions.values()}
        if self.spare is not None:
            known.add(self.spare.leader)
        for pid in _children() or ():
            if pid not in known:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    # --- requests -------------------------------------------------------------------------
    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to a run request, built here from checked fields: nothing the session's
        process writes reaches the host except the ``ok``/``output``/``error`` of a
        well-formed reply that carries this request's id."""
        key = str(request.get("session", ""))
        code = str(request.get("code", ""))
        timeout_s = float(request.get("timeout_s") or self.settings.timeout_s)
        note = ""
        handle = self.sessions.get(key)
        if handle is not None:
            self.sessions.move_to_end(key)
        else:
            if key in self.evicted:
                del self.evicted[key]
                note = f"[note: this session was idle and restarted; {LOST}]\n"
            try:
                handle = self._take_session()
            except (session.SessionError, OSError) as exc:
                return {"ok": False, "output": f"sandbox error: {exc}", "error": "SandboxError", "infra_error": True}
            self.sessions[key] = handle
            self.orphans_come_here |= not handle.namespaced
            self._evict_beyond_limit()
        nonce = os.urandom(8).hex()  # names this request; a frame without it is not our cell's reply
        try:
            wire.write_frame(handle.to_cell, {"code": code, "id": nonce})
        except OSError:  # the process died between cells (a thread of an earlier cell, OOM)
            self._drop(key)
            note += f"[note: the session's process had exited; {LOST}]\n"
            try:
                handle = self._take_session()
            except (session.SessionError, OSError) as exc:
                return {"ok": False, "output": f"sandbox error: {exc}", "error": "SandboxError", "infra_error": True}
            self.sessions[key] = handle
            self.orphans_come_here |= not handle.namespaced
            wire.write_frame(handle.to_cell, {"code": code, "id": nonce})
        deadline = time.monotonic() + timeout_s
        try:
            payload = wire.read_payload(handle.from_cell, deadline, handle.pidfd)
        except wire.Timeout:
            self._drop(key)
            return timeout_reply(timeout_s)
        except wire.BadFrame as exc:
            return self._violation(key, str(exc))
        except (wire.Closed, OSError):
            self.sessions.pop(key, None)
            self.ended = True
            status = session.collect(handle)
            text, error, timed_out = describe_exit(status, self.settings.cpu_s)
            return {"ok": False, "output": text, "error": error, "timed_out": timed_out}
        reply = cell_reply(payload, nonce)
        if isinstance(reply, str):
            return self._violation(key, reply)
        if wire.readable_now(handle.from_cell):  # a second frame behind the reply: forged
            return self._violation(key, "more than one reply frame")
        reply["output"] = note + reply["output"]
        return reply

    def _violation(self, key: str, detail: str) -> dict[str, Any]:
        """The session's reply pipe carried something its cell process never writes (code the
        model wrote can reach the pipe): end that session only. The call is answered as the
        model's own doing (scored as usual, never an infrastructure error, never retried)."""
        self._drop(key)
        return protocol_violation_reply(detail)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "run":
            return self.run(request)
        if op == "close":
            self._drop(str(request.get("session", "")))
            self.evicted.pop(str(request.get("session", "")), None)
            return {"ok": True}
        if op == "ping":
            return {"ok": True, "sessions": len(self.sessions), "namespaces": self.settings.session_namespaces}
        return {"ok": False, "output": f"sandbox error: unknown op {op!r}", "error": "SandboxError", "infra_error": True}

    def serve(self) -> None:
        while True:
            try:
                request = wire.read_frame(self.host_in)
            except (wire.Closed, OSError):
                break  # the host went away: end every session, then ourselves
            try:
                reply = self.handle(request)
            except Exception as exc:  # our bug: answer, keep serving
                reply = {"ok": False, "output": f"sandbox error: {exc!r}", "error": "SandboxError", "infra_error": True}
            wire.write_frame(self.host_out, reply)
            # After answering, off the caller's clock: reap what ended, fork a spare session
            # (it boots while we wait for the next request).
            if self.ended:
                self._reap_orphans()
            elif self.orphans_come_here:
                self._reap_exited()
            self._start_spare()
        self.shutdown()

    def shutdown(self) -> None:
        for handle in list(self.sessions.values()) + ([self.spare] if self.spare else []):
            self._end(handle)
        self.sessions.clear()
        self.spare = None
        self._reap_orphans()


def _reap(pid: int, timeout_s: float) -> None:
    """waitpid with a deadline: a child that will not die is left for a later sweep."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() > deadline:
            return
        time.sleep(0.002)


def _children() -> list[int] | None:
    pids: list[int] = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.extend(int(p) for p in f.read().split())
    except OSError:
        return None
    return pids


def main(argv: list[str]) -> None:
    settings = GuestSettings.from_json(argv[1])
    # The protocol owns the original stdin/stdout; a stray print in here must not corrupt it.
    host_in, host_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the host, which then closes us
    try:
        linux.set_pdeathsig(signal.SIGKILL)  # bubblewrap adds --die-with-parent on top
        if settings.parent_pid is not None and os.getppid() != settings.parent_pid:
            sys.exit(1)
    except OSError:
        pass
    try:
        linux.set_child_subreaper()
    except OSError:
        pass
    preload_errors = []
    for name in settings.preload:
        try:
            importlib.import_module(name)
        except Exception as exc:
            preload_errors.append(f"{name}: {exc!r}")
    zygote = Zygote(settings, host_in, host_out)
    try:  # the start-up self-check: one session must come up
        zygote.spare = zygote._take_session()
    except (session.SessionError, OSError) as exc:
        wire.write_frame(host_out, {"ready": False, "error": str(exc)})
        return
    wire.write_frame(
        host_out,
        {
            "ready": True,
            "pid": os.getpid(),
            "namespaces": zygote.spare.namespaced,
            "preload_errors": preload_errors,
        },
    )
    zygote.serve()
