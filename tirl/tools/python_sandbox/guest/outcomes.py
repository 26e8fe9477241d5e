"""How a session's end reads to the model: timeouts and deaths as observation text.

The launcher passes the cell process's fate up as an exit status (128 + signal, or the exit
code); these texts name it and always say that the session's variables are gone, because a
model that keeps using them would otherwise be confused by the NameError that follows.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

_SIGNAL_NOTES = {
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "arithmetic fault",
    signal.SIGABRT: "aborted",
    signal.SIGKILL: "killed; the memory limit or a kill signal",
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGXFSZ: "file size limit exceeded",
}
LOST = "variables of earlier cells were lost"


def describe_exit(status: int | None, cpu_s: float) -> tuple[str, str, bool]:
    """(observation text, short error, timed_out) for a session that died during a cell.
    The launcher passes the cell's status up as 128+signal or the exit code."""
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    if code is None:
        return f"ProcessError: the Python process died ({LOST})", "ProcessError", False
    if code > 128 or code < 0:  # shell-style 128+signal; negative: the launcher itself was killed
        sig = code - 128 if code > 0 else -code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        if sig == signal.SIGXCPU:
            return (f"TimeoutError: CPU time exceeded {cpu_s:g} s ({LOST})", "TimeoutError: CPU time limit", True)
        note = _SIGNAL_NOTES.get(sig, "killed by a signal")
        return f"ProcessError: the Python process died: {name} ({note}; {LOST})", f"ProcessError: {name}", False
    text = f"ProcessError: the Python process exited with code {code} ({LOST})"
    return text, f"ProcessError: exit code {code}", False


def timeout_reply(timeout_s: float) -> dict[str, Any]:
    text = f"TimeoutError: execution exceeded {timeout_s:g} s ({LOST})"
    return {"ok": False, "output": text, "error": "TimeoutError", "timed_out": True}


def cell_reply(payload: bytes, nonce: str) -> dict[str, Any] | str:
    """The reply a session's cell process sent, rebuilt from its three checked fields, or a
    one-line reason why ``payload`` is not one: undecodable, not an object, another request's
    id (an earlier forged or stray frame), or fields of the wrong type. Anything else the
    frame carries (``infra_error``, ``timed_out``, ``generation``...) is dropped: those are
    the worker's and the host's to say, never the cell's."""
    try:
        obj = json.loads(payload.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "a reply frame that is not JSON"
    if not isinstance(obj, dict):
        return "a reply frame that is not an object"
    if obj.get("id") != nonce:
        return "a reply frame for another request"
    ok, output, error = obj.get("ok"), obj.get("output"), obj.get("error")
    if not isinstance(ok, bool) or not isinstance(output, str) or not (error is None or isinstance(error, str)):
        return "a reply frame with fields of the wrong type"
    return {"ok": ok, "output": output, "error": error}


def protocol_violation_reply(detail: str) -> dict[str, Any]:
    text = f"SandboxError: the session's reply pipe carried {detail}; code in the session wrote to it, so the session was ended ({LOST})"
    return {"ok": False, "output": text, "error": "ProtocolViolation"}
