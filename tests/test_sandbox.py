"""The python tool's sandbox as processes: semantics, isolation, containment, reaping.

Every containment test runs hostile code, then checks that the observation says what
happened, that the pool still answers (a fresh session and a session holding state), and
that no zombie is left under this test process. Bubblewrap tests are skipped where bwrap
does not work; the basic semantics also run with ``isolation="none"``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from tirl.tools import PythonSandbox, SandboxConfig, make_tool
from tirl.tools.python_sandbox import bwrap_works
from tirl.tools.python_sandbox.launcher import LaunchSpec
from tirl.tools.python_sandbox.worker import WorkerSlot
from tirl.types import ToolCall

pytestmark = pytest.mark.timeout(120)

HAS_BWRAP = bwrap_works()
needs_bwrap = pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap does not work on this machine")
REPO = Path(__file__).resolve().parent.parent
LOST = "variables of earlier cells were lost"


# --- process inspection ------------------------------------------------------------------
def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state, comm) for every visible process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(name)] = (int(fields[1]), fields[0], comm)
    return table


def descendants(root: int) -> dict[int, tuple[int, str, str]]:
    table = _proc_table()
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, info in table.items():
            if info[0] == parent and pid not in found:
                found[pid] = info
                frontier.append(pid)
    return found


def assert_no_zombies(timeout_s: float = 5.0) -> None:
    """No Z-state process under this test process (the workers and their sessions included).
    A process is a zombie for a moment between its death and its reaping: poll briefly."""
    deadline = time.monotonic() + timeout_s
    while True:
        zombies = {pid: info for pid, info in descendants(os.getpid()).items() if info[1] == "Z"}
        if not zombies or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not zombies, f"zombies left: {zombies}"


def _proc_table_of(pids) -> dict:
    table = _proc_table()
    return {p: table.get(p) for p in pids}


def wait_gone(pids, timeout_s: float = 5.0) -> set[int]:
    deadline = time.monotonic() + timeout_s
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if os.path.exists(f"/proc/{p}") and _proc_table().get(p, (0, "X"))[1] != "Z"}
        time.sleep(0.05)
    return alive


# --- fixtures ----------------------------------------------------------------------------
def _config(isolation: str, **kw) -> SandboxConfig:
    return SandboxConfig(**{"isolation": isolation, "timeout_s": 5, "cpu_s": 5, "memory_mb": 512, **kw})


@pytest.fixture(scope="module")
def bwrap_sandbox():
    if not HAS_BWRAP:
        pytest.skip("bubblewrap does not work on this machine")
    sb = PythonSandbox(_config("bwrap", workers=2))
    sb.run_sync("kept = 42", session="keeper")
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def plain_sandbox():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "not isolated" is the point here
        sb = PythonSandbox(_config("none", workers=1))
    sb.run_sync("kept = 42", session="keeper")
    yield sb
    sb.close()


@pytest.fixture(params=["bwrap", "none"])
def sandbox(request):
    return request.getfixturevalue("bwrap_sandbox" if request.param == "bwrap" else "plain_sandbox")


def assert_healthy(sb: PythonSandbox) -> None:
    assert sb.run_sync("1 + 1", session=f"fresh-{time.monotonic_ns()}").output == "2\n"
    assert sb.run_sync("kept", session="keeper").output == "42\n"
    assert_no_zombies()


def call(code: str) -> ToolCall:
    return ToolCall(name="python", arguments={"code": code})


# --- semantics (both modes) --------------------------------------------------------------
def test_tool_protocol_surface(sandbox):
    assert sandbox.name == "python" and sandbox.main_arg == "code"
    assert sandbox.parameters["required"] == ["code"]
    obs = asyncio.run(sandbox.run(call("2 ** 10"), session="surface"))
    assert obs.ok and obs.output == "1024\n" and obs.error is None and not obs.timed_out
    assert obs.latency_ms > 0 and not obs.infra_error


def test_last_expression_and_no_output(sandbox):
    assert sandbox.run_sync("x = 6\nx * 7", session="expr").output == "42\n"
    assert sandbox.run_sync("print('hi')", session="expr").output == "hi\n"
    assert sandbox.run_sync("y = 1", session="expr").output == "(no output)"


def test_variables_persist_within_a_session_only(sandbox):
    async def scenario():
        await sandbox.run(call("secret = 'a'"), session="s-a")
        await sandbox.run(call("secret = 'b'"), session="s-b")
        return await asyncio.gather(
            sandbox.run(call("secret"), session="s-a"),
            sandbox.run(call("secret"), session="s-b"),
            sandbox.run(call("secret"), session="s-c"),
        )

    a, b, c = asyncio.run(scenario())
    assert a.output == "'a'\n" and b.output == "'b'\n"
    assert not c.ok and c.error == "NameError: name 'secret' is not defined"


def test_close_session_forgets_state(sandbox):
    sandbox.run_sync("z = 1", session="closing")
    asyncio.run(sandbox.close_session("closing"))
    assert sandbox.run_sync("z", session="closing").error == "NameError: name 'z' is not defined"


def test_traceback_tail(sandbox):
    obs = sandbox.run_sync("def f():\n    return {}['k']\nprint('start')\nf()", session="tb")
    assert not obs.ok and obs.error == "KeyError: 'k'"
    lines = obs.output.splitlines()
    assert lines[0] == "start" and lines[-1] == "KeyError: 'k'"
    assert len(lines) <= 1 + SandboxConfig().traceback_lines
    assert "zygote" not in obs.output and "cellproc" not in obs.output and "cell.py" not in obs.output


def test_syntax_error_is_an_observation(sandbox):
    obs = sandbox.run_sync("for", session="syntax")
    assert not obs.ok and obs.error.startswith("SyntaxError") and not obs.infra_error


def test_truncation_marker(sandbox):
    obs = sandbox.run_sync("print('a' * 5000)", session="trunc")
    assert obs.output.startswith("a" * 1024) and obs.output.endswith("\n...[truncated 3977 chars]")


def test_output_below_python_is_captured(sandbox):
    obs = sandbox.run_sync("import os\nos.system('echo from-a-shell')", session="fd")
    assert "from-a-shell" in obs.output


def test_concurrent_sessions_stay_apart(sandbox):
    async def trajectory(i: int) -> list[str]:
        outs = []
        for step in range(3):
            code = f"v = {i}" if step == 0 else "v = v * 10\nv"
            outs.append((await sandbox.run(call(code), session=f"conc-{i}")).output)
        return outs

    async def main():
        return await asyncio.gather(*(trajectory(i) for i in range(12)))

    for i, outs in enumerate(asyncio.run(main())):
        assert outs == ["(no output)", f"{i * 10}\n", f"{i * 100}\n"]


def test_malformed_calls_are_observations(sandbox):
    bad = asyncio.run(sandbox.run(ToolCall(name="python", arguments={"source": "1"}), session="bad"))
    assert not bad.ok and not bad.infra_error and "'code'" in bad.output
    parsed = asyncio.run(sandbox.run(ToolCall(name="python", arguments={}, error="unparsable call"), session="bad"))
    assert not parsed.ok and parsed.output == "unparsable call"


def test_timeout_kills_and_reports(sandbox):
    sandbox.run_sync("before = 1", session="loop")
    obs = sandbox.run_sync("while True:\n    pass", session="loop", timeout_s=1)
    assert obs.timed_out and not obs.ok
    assert obs.output == f"TimeoutError: execution exceeded 1 s ({LOST})"
    assert sandbox.run_sync("before", session="loop").error == "NameError: name 'before' is not defined"
    assert_healthy(sandbox)


# --- containment (bubblewrap) ------------------------------------------------------------
@needs_bwrap
def test_sleep_is_cut_at_the_wall_clock(bwrap_sandbox):
    t0 = time.monotonic()
    obs = bwrap_sandbox.run_sync("import time\ntime.sleep(100)", session="sleep", timeout_s=1)
    assert obs.timed_out and time.monotonic() - t0 < 5
    assert_healthy(bwrap_sandbox)


@needs_bwrap
@pytest.mark.parametrize("code", ["x = bytearray(10**10)", "x = []\nwhile True:\n    x.append(bytearray(10**6))"])
def test_memory_bomb(bwrap_sandbox, code):
    obs = bwrap_sandbox.run_sync(code, session=f"mem-{len(code)}")
    assert not obs.ok and not obs.infra_error and not obs.timed_out
    assert "MemoryError" in obs.output or "ProcessError" in obs.output
    assert_healthy(bwrap_sandbox)


@needs_bwrap
@pytest.mark.parametrize(
    "code",
    [
        "import os\nwhile True:\n    os.fork()",
        "import subprocess\nprocs = []\nwhile True:\n    procs.append(subprocess.Popen(['sleep', '60']))",
    ],
    ids=["os.fork", "subprocess"],
)
def test_fork_bomb(bwrap_sandbox, code):
    obs = bwrap_sandbox.run_sync(code, session="forks", timeout_s=4)
    assert not obs.ok and not obs.infra_error
    assert "Resource temporarily unavailable" in obs.output or obs.timed_out
    asyncio.run(bwrap_sandbox.close_session("forks"))
    leftovers = [p for p, info in descendants(os.getpid()).items() if info[2] == "sleep"]
    assert not wait_gone(leftovers), "processes of a closed session survived"
    assert_healthy(bwrap_sandbox)


@needs_bwrap
def test_no_network(bwrap_sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        for target in [("1.1.1.1", 53), ("127.0.0.1", port)]:
            code = f"import socket\nsocket.create_connection({target!r}, timeout=2)"
            obs = bwrap_sandbox.run_sync(code, session="net")
            assert not obs.ok and ("OSError" in obs.output or "Connection" in obs.output), obs
    finally:
        listener.close()
    assert_healthy(bwrap_sandbox)


@needs_bwrap
def test_filesystem_is_read_only_except_tmp(bwrap_sandbox, tmp_path):
    target = REPO / "sandbox-was-here"
    for path in ["/etc/x", str(target), str(tmp_path / "x")]:
        obs = bwrap_sandbox.run_sync(f"open({path!r}, 'w').write('x')", session="fs")
        assert not obs.ok and ("Read-only" in obs.output or "No such file" in obs.output), obs
    assert not target.exists() and not (tmp_path / "x").exists()
    obs = bwrap_sandbox.run_sync("open('/tmp/note', 'w').write('kept')\nopen('/tmp/note').read()", session="fs")
    assert obs.output == "'kept'\n"
    other = bwrap_sandbox.run_sync("import os\nos.path.exists('/tmp/note')", session="fs-other")
    assert other.output == "False\n"  # each session has its own /tmp
    bwrap_sandbox.run_sync("open('/dev/shm/seg', 'w').write('x')", session="fs")
    assert bwrap_sandbox.run_sync("import os\nos.listdir('/dev/shm')", session="fs-other").output == "[]\n"
    assert not bwrap_sandbox.run_sync("open('/etc/shadow').read()", session="fs").ok


@needs_bwrap
def test_huge_output(bwrap_sandbox):
    obs = bwrap_sandbox.run_sync("print('x' * 10**8)", session="big")
    assert obs.ok and obs.output.startswith("x" * 1024)
    assert obs.output.endswith(f"...[truncated {10**8 + 1 - 1024} chars]")
    assert_healthy(bwrap_sandbox)


@needs_bwrap
@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.kill(os.getppid(), 9)",
        "import os\nos.kill(1, 9)",
        "import os\nos.kill({host}, 9)",
        "import os, signal\nos.killpg(0, signal.SIGKILL)",
    ],
    ids=["parent", "pid1", "host", "own-group"],
)
def test_signalling_out_hurts_nobody(bwrap_sandbox, code):
    pids = bwrap_sandbox.worker_pids()
    bwrap_sandbox.run_sync("state = 'alive'", session="signals")
    obs = bwrap_sandbox.run_sync(code.format(host=os.getpid()), session="signals")
    assert not obs.infra_error
    assert bwrap_sandbox.worker_pids() == pids, "a worker was replaced"
    assert_healthy(bwrap_sandbox)


@needs_bwrap
@pytest.mark.parametrize(
    "code, expected",
    [
        ("import os\nos._exit(1)", "exited with code 1"),
        ("import ctypes\nctypes.string_at(0)", "SIGSEGV"),
        ("import os\nos.abort()", "SIGABRT"),
    ],
)
def test_crashes_are_observations(bwrap_sandbox, code, expected):
    bwrap_sandbox.run_sync("v = 1", session="crash")
    obs = bwrap_sandbox.run_sync(code, session="crash")
    assert not obs.ok and not obs.infra_error and expected in obs.output and LOST in obs.output
    again = bwrap_sandbox.run_sync("v", session="crash")  # same session, fresh process
    assert again.error == "NameError: name 'v' is not defined"
    assert_healthy(bwrap_sandbox)


@needs_bwrap
def test_forked_child_never_answers_for_the_cell(bwrap_sandbox):
    obs = bwrap_sandbox.run_sync("import os\npid = os.fork()\n'parent' if pid else 'child'", session="forked")
    assert obs.output == "'parent'\n"
    assert bwrap_sandbox.run_sync("1", session="forked").output == "1\n"
    # The child is the cell's to wait for (a zombie until then, as anywhere); ending the
    # session must clear it.
    asyncio.run(bwrap_sandbox.close_session("forked"))
    assert_healthy(bwrap_sandbox)


@needs_bwrap
def test_dead_worker_is_replaced(bwrap_sandbox):
    bwrap_sandbox.run_sync("w = 'state'", session="victim")
    index = bwrap_sandbox._pins["victim"]
    bwrap_pid = bwrap_sandbox.worker_pids()[index]
    table = descendants(bwrap_pid)
    zygote = next(p for p, (ppid, _, comm) in table.items() if comm != "bwrap" and table[ppid][2] == "bwrap")
    os.kill(zygote, signal.SIGKILL)
    obs = bwrap_sandbox.run_sync("w", session="victim")
    assert not obs.infra_error and "[note: the sandbox worker was restarted" in obs.output
    assert "NameError" in obs.output
    assert bwrap_sandbox.worker_pids()[index] != bwrap_pid
    if bwrap_sandbox._pins["keeper"] == index:  # its state died with the worker, as it should
        bwrap_sandbox.run_sync("kept = 42", session="keeper")
    assert_healthy(bwrap_sandbox)


def test_cpu_limit_and_session_eviction():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sb = PythonSandbox(workers=1, cpu_s=1, timeout_s=10, max_sessions_per_worker=2)
    try:
        obs = sb.run_sync("while True:\n    pass", session="cpu")
        assert obs.timed_out and obs.output.startswith("TimeoutError: CPU time exceeded 1 s")
        for i in range(3):
            sb.run_sync(f"a = {i}", session=f"lru-{i}")
        assert sb.run_sync("a", session="lru-2").output == "2\n"
        evicted = sb.run_sync("a", session="lru-0")
        assert evicted.output.startswith("[note: this session was idle and restarted")
        assert "NameError" in evicted.output
        assert_no_zombies()
    finally:
        sb.close()


@needs_bwrap
def test_without_per_session_namespaces(monkeypatch):
    """Where user namespaces are refused (some containers) sessions run without them: each
    gets a process group and a directory, and the worker sweeps up orphans."""
    from tirl.tools.python_sandbox import launcher

    def no_namespaces(config):
        settings = guest_settings(config)
        settings.session_namespaces = False
        return settings

    guest_settings = launcher.guest_settings
    monkeypatch.setattr(launcher, "guest_settings", no_namespaces)
    # Without its own user namespace RLIMIT_NPROC counts every process of the uid, including
    # other sandboxes' (the worker sets it from what it can see): leave room here.
    sb = PythonSandbox(_config("bwrap", workers=1, timeout_s=1, max_procs=4096))
    try:
        assert sb.run_sync("import os\nx = os.getpid()\nx > 2", session="a").output == "True\n"
        assert sb.run_sync("x > 2", session="a").output == "True\n"
        daemon = "import subprocess\nsubprocess.Popen(['sleep', '60'], start_new_session=True)\nwhile True:\n    pass"
        assert sb.run_sync(daemon, session="a").timed_out
        assert "exited with code 4" in sb.run_sync("import os\nos._exit(4)", session="a").output
        assert sb.run_sync("1 + 1", session="b").output == "2\n"
        assert_no_zombies()
        escaped = [p for p, info in descendants(os.getpid()).items() if info[2] == "sleep"]
        assert not wait_gone(escaped), "a process that left the session's group survived it"
    finally:
        sb.close()


# --- worker failure, shutdown, orphans ---------------------------------------------------
def _slot(argv: list[str]) -> WorkerSlot:
    return WorkerSlot(0, lambda: LaunchSpec(argv, {}, "/", "none"), startup_timeout_s=5)


def test_worker_that_cannot_start_is_an_infra_error():
    slot = _slot(["/bin/false"])
    try:
        reply = slot.submit({"op": "run", "session": "s", "code": "1"}, 1.0).result(timeout=30)
    finally:
        slot.close()
    assert reply["infra_error"] and not reply["ok"] and "did not start" in reply["output"]


def test_worker_dying_twice_is_an_infra_error():
    hello = b'\x00\x00\x00\x0f{"ready": true}'
    script = f"import sys, os; os.write(1, {hello!r}); sys.stdin.buffer.read(8); os._exit(3)"
    slot = _slot([sys.executable, "-c", script])
    try:
        reply = slot.submit({"op": "run", "session": "s", "code": "1"}, 1.0).result(timeout=30)
    finally:
        slot.close()
    assert reply["infra_error"] and "died" in reply["output"]
    assert_no_zombies()


def test_aclose_leaves_no_process_behind():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sb = make_tool("python", workers=2)
    sb.run_sync("import subprocess\np = subprocess.Popen(['sleep', '60'])", session="a")
    sb.run_sync("1", session="b")
    ours = set(sb.worker_pids())
    for pid in list(ours):
        ours |= set(descendants(pid))
    assert len(ours) >= 6
    asyncio.run(sb.aclose())
    assert not wait_gone(ours)
    assert sb.run_sync("1").infra_error  # closed: an observation, not an exception


@pytest.mark.parametrize("ending", ["exit", "sigkill"])
def test_workers_die_with_their_host(ending):
    host = textwrap.dedent(
        """
        import os, sys, time, warnings
        warnings.simplefilter("ignore")
        from tirl.tools import PythonSandbox
        sb = PythonSandbox(workers=2)
        sb.run_sync("import subprocess; p = subprocess.Popen(['sleep', '60'])", session="a")
        sb.run_sync("1", session="b")
        print("ready", flush=True)
        if sys.argv[1] == "exit":
            sys.stdin.readline()  # the test has listed our processes
            sys.exit(0)  # no close(): the atexit hook must clean up
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", host, ending], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        theirs = set(descendants(proc.pid))
        assert len(theirs) >= 4, _proc_table_of(theirs)
        if ending == "sigkill":
            proc.kill()
        else:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not wait_gone(theirs), "sandbox processes outlived their host"
