"""A run killed with SIGKILL mid-training and resumed produces the same following steps as an
uninterrupted run: model, optimiser, scheduler, RNG (sampling included) and data position are
all restored."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("resume_driver.py")
IGNORED = ("time/", "rollout/tokens_per_s", "total/wall_s", "mem/")  # measurements, not results


def _run(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    return subprocess.Popen([sys.executable, str(DRIVER), str(run_dir), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if not k.startswith(IGNORED)} for r in rows]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    full = tmp_path / "full"
    p = _run(full)
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out

    killed = tmp_path / "killed"
    p = _run(killed)
    marker = killed / "checkpoints" / "step_000002" / "COMPLETE"
    deadline = time.time() + 600
    while not marker.exists():
        assert p.poll() is None, p.stdout.read()
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)  # mid-training: somewhere in step 3
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not (killed / "checkpoints" / "step_000005").exists()

    p = _run(killed, "--resume")
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    a, b = _metrics(full), _metrics(killed)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5]
    # steps after the kill equal the uninterrupted run's, loss and grad norm included
    for ra, rb in zip(a, b):
        assert ra == rb, (ra, rb)
    assert any(abs(r["loss/pg"]) > 0 and r["policy/grad_norm"] > 0 for r in a), "the run must really update weights"
