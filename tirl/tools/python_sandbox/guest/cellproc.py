"""The cell process: PID 2 of a session, where the model's code runs.

It drops what it inherited (descriptors, capabilities), applies the limits, replaces
``__main__`` with a fresh module that is the session's namespace, says hello, and then runs
one cell per request until the worker closes its pipe.
"""

from __future__ import annotations

import builtins
import os
import signal
import sys
import types

from . import limits, linux, wire
from .capture import FdCapture
from .cell import CellRunner
from .settings import GuestSettings

EXIT_SETUP_FAILED = 70  # EX_SOFTWARE: a session's processes could not be set up


def main(settings: GuestSettings, reaper: int, to_r: int, from_w: int, namespaced: bool, tmp_dir: str | None) -> None:
    """``tmp_dir``: the session's directory when it is not a private tmpfs (the worker
    deletes it when the session ends)."""
    try:
        linux.die_with_parent(reaper)
        os.setsid()  # own session and process group: no terminal signals; killpg without a PID ns
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        FdCapture(os.getcwd())
        limits.apply(settings, namespaced)
        try:
            linux.drop_capabilities()
        except OSError:
            pass
        try:
            linux.set_no_new_privs()
        except OSError:
            pass
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main  # so pickle and multiprocessing find the model's classes
        sys.argv = [""]
        sys.stdin = open(os.devnull)  # input() raises EOFError instead of waiting forever
        runner = CellRunner(main.__dict__, settings.max_output_chars, settings.traceback_lines)
        wire.write_frame(from_w, {"ready": True, "pid": os.getpid(), "namespaced": namespaced, "tmp": tmp_dir})
    except BaseException as exc:
        try:
            wire.write_frame(from_w, {"ready": False, "error": repr(exc)})
        finally:
            os._exit(EXIT_SETUP_FAILED)
    serve(runner, settings, to_r, from_w)


def serve(runner: CellRunner, settings: GuestSettings, to_r: int, from_w: int) -> None:
    """Answer cells until the worker closes the pipe. Bound locally so the model rebinding
    ``json`` or ``os`` attributes cannot redirect the replies."""
    read_frame, write_frame, budget, getpid = wire.read_frame, wire.write_frame, limits.set_cell_cpu_budget, os.getpid
    me = getpid()
    while True:
        try:
            request = read_frame(to_r)
        except BaseException:
            os._exit(0)
        budget(settings.cpu_s)
        try:
            reply = runner.run(str(request.get("code", "")) if isinstance(request, dict) else "").to_wire()
        except BaseException as exc:  # a failure of the runner itself (MemoryError, ...)
            reply = {"ok": False, "output": f"{type(exc).__name__} while running the cell", "error": type(exc).__name__}
        reply["id"] = request.get("id") if isinstance(request, dict) else None  # the worker matches it
        if getpid() != me:
            # A child the cell forked (os.fork() without os._exit) returned out of the
            # model's code. It shares our pipes: it must neither answer nor read requests.
            os._exit(0)
        try:
            write_frame(from_w, reply)
        except BaseException:
            os._exit(0)
