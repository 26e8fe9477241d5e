"""Run one notebook cell and turn what happened into the observation text (ALGORITHMS.md §1).

- The last statement, when it is a bare expression, is evaluated separately and its
  ``repr`` printed unless it is None (a notebook's display; ``print(...)`` returns None, so a
  trailing print is not shown twice). ``_`` holds the last displayed value, as in IPython.
- stdout and stderr are captured together (see ``capture``).
- On an exception the observation is what was printed so far followed by the last
  ``traceback_lines`` lines of the traceback. Frames of this module are cut: the traceback
  starts at the first frame of a cell (cells are compiled as ``<cell-N>`` and registered in
  ``linecache`` so earlier cells' lines show in later tracebacks).
- ``SystemExit`` with code 0 or None ends the cell normally (scripts end with ``sys.exit()``);
  any other exit code is an error.
- The text is cut to ``max_output_chars`` with a ``...[truncated N chars]`` marker, keeping
  the error tail visible; empty output becomes "(no output)".
"""

from __future__ import annotations

import ast
import linecache
import sys
import textwrap
import traceback
from dataclasses import dataclass
from typing import Any

from .capture import BoundedSink, CaptureStream, FdCapture

NO_OUTPUT = "(no output)"
CELL_FILE_PREFIX = "<cell-"
_ERROR_CHARS = 300  # the short ``error`` field


@dataclass
class CellResult:
    ok: bool
    output: str
    error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"ok": self.ok, "output": self.output, "error": self.error}


def truncation_marker(dropped: int) -> str:
    return f"\n...[truncated {dropped} chars]"


def clean(text: str) -> str:
    """Replace lone surrogates (``print('\\ud800')``) so the text is valid UTF-8."""
    return text.encode("utf-8", "replace").decode("utf-8")


def compose(printed: str, printed_total: int, tail: str, limit: int) -> str:
    """Printed text then the error tail, within ``limit`` characters plus markers.

    The tail gets up to three quarters of the budget (cut at its end if longer: its first
    lines name the failing line and the exception type), the printed text the rest (cut at
    its end: the start of the output is what a notebook would show first).
    """
    if tail and len(tail) > limit * 3 // 4:
        keep = limit * 3 // 4
        tail = tail[:keep] + truncation_marker(len(tail) - keep)
    budget = max(0, limit - len(tail)) if tail else limit
    if printed_total > budget:
        printed = printed[:budget] + truncation_marker(printed_total - budget)
    if tail and printed and not printed.endswith("\n"):
        printed += "\n"
    text = printed + tail
    return text if text.strip() else NO_OUTPUT


def _first_cell_frame(tb):
    """Skip the sandbox's own frames at the top of a traceback."""
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(CELL_FILE_PREFIX):
        tb = tb.tb_next
    return tb


def error_summary(exc: BaseException) -> str:
    try:
        line = traceback.format_exception_only(type(exc), exc)[-1].strip()
    except Exception:  # an exception whose __str__ raises
        line = type(exc).__name__
    return line[:_ERROR_CHARS]


def traceback_tail(exc: BaseException, lines: int) -> str:
    if isinstance(exc, SyntaxError):  # no frames worth showing; the caret block is the point
        formatted = traceback.format_exception_only(type(exc), exc)
    else:
        formatted = traceback.format_exception(type(exc), exc, _first_cell_frame(exc.__traceback__))
    all_lines = "".join(formatted).rstrip("\n").split("\n")
    return "\n".join(all_lines[-lines:]) if lines > 0 else all_lines[-1]


class CellRunner:
    """Holds one session's namespace and runs its cells in order."""

    def __init__(self, namespace: dict[str, Any], max_output_chars: int, traceback_lines: int) -> None:
        self.namespace = namespace
        self.limit = max_output_chars
        self.traceback_lines = traceback_lines
        self.count = 0
        self.sink = BoundedSink(max_output_chars)
        self.stdout = CaptureStream(self.sink, "<stdout>", 1)
        self.stderr = CaptureStream(self.sink, "<stderr>", 2)

    def _compile(self, code: str, filename: str):
        tree = ast.parse(code, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = compile(ast.Expression(tree.body.pop().value), filename, "eval", dont_inherit=True)
        # dont_inherit: this module's ``from __future__ import annotations`` must not leak
        # into the model's code.
        body = compile(tree, filename, "exec", dont_inherit=True) if tree.body else None
        return body, last

    def _execute(self, body, last) -> None:
        ns = self.namespace
        if body is not None:
            exec(body, ns)
        if last is not None:
            value = eval(last, ns)
            if value is not None:
                ns["_"] = value
                self.stdout.write(repr(value) + "\n")

    def run(self, code: str, fd_capture: bool = True) -> CellResult:
        if code[:1] in (" ", "\t"):  # a block indented as a whole (copied out of markup)
            code = textwrap.dedent(code)
        self.count += 1
        filename = f"{CELL_FILE_PREFIX}{self.count}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        self.sink.reset()
        error: BaseException | None = None
        try:
            body, last = self._compile(code, filename)
        except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError) as exc:
            error = exc  # ValueError: null bytes; the others: pathological nesting or size
        else:
            saved = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = self.stdout, self.stderr
            try:
                self._execute(body, last)
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    error = exc
            except BaseException as exc:  # the model's code may raise anything
                error = exc
            finally:
                sys.stdout, sys.stderr = saved
        return self._result(error, fd_capture)

    def _result(self, error: BaseException | None, fd_capture: bool) -> CellResult:
        printed, total = self.sink.value(), self.sink.total
        if fd_capture:
            low, low_total = FdCapture.take(self.limit)
            if low_total:
                printed = (printed + low)[: self.limit] if len(printed) < self.limit else printed
                total += low_total
        tail = ""
        summary = None
        if error is not None:
            try:
                tail = traceback_tail(error, self.traceback_lines)
                summary = error_summary(error)
            except BaseException:  # formatting itself failed (MemoryError, a hostile __repr__)
                tail = summary = type(error).__name__
            error.__traceback__ = None  # do not keep the failed cell's frames alive
        output = clean(compose(printed, total, tail, self.limit))
        return CellResult(ok=error is None, output=output, error=clean(summary) if summary else None)
