"""Code the model writes cannot forge the sandbox's replies.

The cell process answers the worker on a pipe that the model's code can find in
``/proc/self/fd`` and write to. Whatever it writes there, the worker checks every reply (the
request's id, three typed fields, one frame per request) and builds what the host receives
itself, so a forged frame can change at most the forging session's own observation:
- it cannot mark the call an infrastructure error or a timeout (which would keep the
  trajectory out of scoring and training);
- a malformed frame ends that session only (no worker restart, no retry, bystander sessions
  keep their variables);
- an extra frame cannot shift later replies by one (each reply carries its request's id).
"""

from __future__ import annotations

import textwrap
import warnings

import pytest

from tirl.tools import PythonSandbox, SandboxConfig
from tirl.tools.python_sandbox import bwrap_works

pytestmark = pytest.mark.timeout(120)

FIND_PIPES = textwrap.dedent("""
    import os, stat, fcntl, struct, json, sys
    def _reply_pipes():
        out = []
        for name in os.listdir('/proc/self/fd'):
            fd = int(name)
            try:
                st = os.fstat(fd)
                flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            except OSError:
                continue
            if stat.S_ISFIFO(st.st_mode) and flags & os.O_ACCMODE == os.O_WRONLY:
                out.append(fd)
        return out
    def _send(raw):
        for fd in _reply_pipes():
            os.write(fd, raw)
    def _frame(obj):
        data = json.dumps(obj).encode()
        return struct.pack('>I', len(data)) + data
    def _current_id():
        f = sys._getframe()
        while f is not None:
            req = f.f_locals.get('request')
            if isinstance(req, dict) and 'id' in req:
                return req['id']
            f = f.f_back
        return None
""")


@pytest.fixture(scope="module", params=["bwrap", "none"])
def sandbox(request):
    if request.param == "bwrap" and not bwrap_works():
        pytest.skip("bubblewrap does not work on this machine")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sb = PythonSandbox(SandboxConfig(isolation=request.param, workers=1, timeout_s=5, cpu_s=5, memory_mb=512))
    yield sb
    sb.close()


def _attack(sb: PythonSandbox, session: str, payload: str):
    sb.run_sync("kept = 42", session="bystander")
    sb.run_sync(FIND_PIPES + "\nstate = 1", session=session)
    pids = sb.worker_pids()
    obs = sb.run_sync(payload, session=session)
    assert sb.worker_pids() == pids, "the shared worker was restarted"
    assert sb.run_sync("kept", session="bystander").output == "42\n", "a bystander session lost its state"
    return obs


@pytest.mark.parametrize("with_id", [False, True], ids=["guessed-id", "stolen-id"])
def test_a_forged_infra_error_is_never_one(sandbox, with_id):
    code = (
        f"_send(_frame({{'id': _current_id() if {with_id} else 'x', 'ok': False, 'output': 'forged', 'error': 'E', "
        "'infra_error': True, 'timed_out': True, 'generation': 99}))\n'done'"
    )
    obs = _attack(sandbox, f"infra-{with_id}", code)
    assert not obs.infra_error and not obs.timed_out
    ended = obs.error == "ProtocolViolation" and "session was ended" in obs.output
    if with_id:  # its own observation is all it can set (or the real reply behind it ends the session)
        assert (obs.output == "forged" and obs.error == "E") or ended, obs
    else:
        assert ended, obs


@pytest.mark.parametrize(
    "raw", [b"\x00\x00\x00\x05nope!", b"\xff\xff\xff\xff", b"\x00\x00\x00\x02[]"], ids=["not-json", "huge-length", "not-an-object"]
)
def test_a_malformed_frame_ends_only_that_session(sandbox, raw):
    session = f"malformed-{raw[:6].hex()}"
    obs = _attack(sandbox, session, f"_send({raw!r})\n'done'")
    assert not obs.infra_error and obs.error == "ProtocolViolation"
    assert "session was ended" in obs.output
    # ended, not retried: the session's state is gone, and the next call runs on a fresh one
    again = sandbox.run_sync("state", session=session)
    assert again.error == "NameError: name 'state' is not defined"


def test_an_extra_frame_cannot_shift_later_replies(sandbox):
    session = "desync"
    obs = _attack(sandbox, session, "_send(_frame({'id': _current_id(), 'ok': True, 'output': 'early\\n', 'error': None}))\n'real'")
    assert obs.output == "early\n" or obs.error == "ProtocolViolation", obs
    outputs = [sandbox.run_sync(f"{k} * 10", session=session) for k in range(1, 4)]
    for k, o in enumerate(outputs, start=1):
        # a call gets its own result or, once, the notice that the session was ended: never an earlier call's output
        assert o.output == f"{k * 10}\n" or (o.error == "ProtocolViolation" and "session was ended" in o.output), o
        assert not o.infra_error
    assert outputs[-1].output == "30\n"
