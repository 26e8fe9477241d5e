"""Cell semantics of the python tool, in-process (no sandbox processes): what the model reads
(ALGORITHMS.md §1: last expression printed, traceback tail, truncation marker, "(no output)")."""

from __future__ import annotations

import builtins

import pytest

from tirl.tools.python_sandbox.guest import wire
from tirl.tools.python_sandbox.guest.capture import BoundedSink
from tirl.tools.python_sandbox.guest.cell import NO_OUTPUT, CellRunner, compose


@pytest.fixture
def runner():
    return CellRunner({"__name__": "__main__", "__builtins__": builtins}, max_output_chars=200, traceback_lines=5)


def run(runner, code):
    return runner.run(code, fd_capture=False)


def test_last_expression_is_displayed_once(runner):
    assert run(runner, "1 + 1").output == "2\n"
    assert run(runner, "x = 3\nx * 2").output == "6\n"
    assert run(runner, "print('hi')").output == "hi\n"  # print returns None: not shown twice
    assert run(runner, "None").output == NO_OUTPUT
    assert run(runner, "'a'").output == "'a'\n"  # repr, like a notebook
    assert run(runner, "_").output == "'a'\n"  # IPython's last value


def test_only_a_trailing_bare_expression_is_displayed(runner):
    assert run(runner, "1\n2").output == "2\n"
    assert run(runner, "y = 5").output == NO_OUTPUT
    assert run(runner, "if True:\n    7").output == NO_OUTPUT


def test_a_block_indented_as_a_whole_runs(runner):
    assert run(runner, "    a = 2\n    a + 1\n").output == "3\n"


def test_stdout_and_stderr_interleave(runner):
    out = run(runner, "import sys\nprint('a')\nprint('b', file=sys.stderr)\nprint('c')").output
    assert out == "a\nb\nc\n"


def test_traceback_tail_names_the_error_and_hides_sandbox_frames(runner):
    result = run(runner, "def f():\n    return 1 / 0\nprint('before')\nf()")
    assert not result.ok
    assert result.error == "ZeroDivisionError: division by zero"
    assert result.output.startswith("before\n")
    tail = result.output.split("before\n", 1)[1].splitlines()
    assert len(tail) <= 5 and tail[-1] == "ZeroDivisionError: division by zero"
    assert "cell.py" not in result.output and "<cell-" in result.output


def test_traceback_shows_lines_of_earlier_cells(runner):
    run(runner, "def g():\n    raise ValueError('bad input')")
    out = run(runner, "g()").output
    assert "raise ValueError('bad input')" in out and out.endswith("ValueError: bad input")


def test_syntax_error_is_an_observation(runner):
    result = run(runner, "print(1")
    assert not result.ok and result.error.startswith("SyntaxError")
    assert "print(1" in result.output


def test_system_exit(runner):
    assert run(runner, "import sys\nprint('done')\nsys.exit(0)").ok
    result = run(runner, "import sys; sys.exit(2)")
    assert not result.ok and result.error == "SystemExit: 2"


def test_truncation_marker(runner):
    out = run(runner, "print('x' * 5000)").output
    assert out.startswith("x" * 200)
    assert out.endswith("\n...[truncated 4801 chars]")


def test_error_tail_survives_truncation(runner):
    out = run(runner, "print('y' * 5000)\nraise KeyError('k')").output
    assert "...[truncated" in out and out.endswith("KeyError: 'k'")
    assert len(out) < 400


def test_huge_exception_message_is_cut():
    text = compose("", 0, "ValueError: " + "z" * 10_000, 100)
    assert text.startswith("ValueError: zzz") and "...[truncated" in text and len(text) < 150


def test_empty_cell_and_lone_surrogates(runner):
    assert run(runner, "").output == NO_OUTPUT
    assert run(runner, "print('\\ud800')").output == "?\n"


def test_future_flags_do_not_leak_into_cells(runner):
    # The sandbox modules use ``from __future__ import annotations``; cells must not.
    assert run(runner, "def f(x: int): pass\nf.__annotations__['x']").output == "<class 'int'>\n"


def test_bounded_sink_keeps_a_prefix_and_counts():
    sink = BoundedSink(5)
    sink.write("abc")
    sink.write("defgh")
    assert sink.value() == "abcde" and sink.total == 8


def test_wire_roundtrip_and_deadline():
    import os
    import time

    r, w = os.pipe()
    try:
        wire.write_frame(w, {"code": "1+1", "ü": "\ud800"})
        assert wire.read_frame(r) == {"code": "1+1", "ü": "\ud800"}
        with pytest.raises(wire.Timeout):
            wire.read_frame(r, deadline=time.monotonic() + 0.05)
        os.close(w)
        w = -1
        with pytest.raises(wire.Closed):
            wire.read_frame(r, deadline=time.monotonic() + 1)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
