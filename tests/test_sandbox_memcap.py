"""The worker's total memory cap (SandboxConfig.worker_memory_mb, a memory cgroup): a session
that allocates past it is killed ("killed" in its observation, not an infrastructure error)
while the other sessions of the same worker keep their variables; without the cap the same
allocation succeeds (the cap, not the per-session limit, is what stopped it); the cgroup is
gone when the sandbox closes."""

from __future__ import annotations

import warnings

import pytest

from tirl.tools import PythonSandbox, SandboxConfig
from tirl.tools.python_sandbox.launcher import bwrap_works
from tirl.tools.python_sandbox.memcap import make_cap

HOG = "b = bytearray(600 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('allocated')"


def _cap_available() -> str:
    cap, why = make_cap(64, "probe")
    if cap is not None:
        cap.remove()
    return why


@pytest.mark.parametrize("isolation", ["bwrap", "none"])
def test_the_cap_kills_the_hog_and_spares_the_bystander(isolation):
    if why := _cap_available():
        pytest.skip(f"no memory cgroup here: {why}")
    if isolation == "bwrap" and not bwrap_works():
        pytest.skip("bubblewrap does not work on this machine")
    for cap_mb, survives in ((200, False), (0, True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sb = PythonSandbox(SandboxConfig(isolation=isolation, workers=1, worker_memory_mb=cap_mb, memory_mb=1024, timeout_s=20))
        try:
            sb.run_sync("kept = 41", session="bystander")
            caps = [sb._slots[0]._proc.spec.cap]  # the worker is up after its first call
            obs = sb.run_sync(HOG, session="hog")
            if survives:
                assert obs.ok and obs.output == "allocated\n" and caps == [None]
            else:
                assert not obs.ok and not obs.infra_error and "SIGKILL" in obs.output, obs
                assert caps[0] is not None and caps[0].path.is_dir() and caps[0].oom_kills() > 0
            assert sb.run_sync("print(kept + 1)", session="bystander").output == "42\n"
        finally:
            sb.close()
        if caps[0] is not None:
            assert not caps[0].path.exists(), "the worker's cgroup outlived it"


def test_a_negative_cap_is_refused():
    with pytest.raises(ValueError, match="worker_memory_mb"):
        SandboxConfig(worker_memory_mb=-1).validate()
