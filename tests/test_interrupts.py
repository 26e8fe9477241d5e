"""Ctrl-C (SIGINT) on the commands a user runs by hand: they stop promptly with exit code 130,
print no traceback, and keep the work they finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]  # subprocesses that load and train models

REPO = Path(__file__).resolve().parent.parent


def _interrupt(argv: list[str], ready: str, tmp_path: Path, delay: float = 0.0, sig: int = signal.SIGINT) -> tuple[int, str, float]:
    """Start ``tirl ARGV``, send ``sig`` once ``ready`` appears in its output (and ``delay`` seconds
    more); (exit code, output, seconds to exit)."""
    log = tmp_path / "out.log"
    with open(log, "w") as f:
        p = subprocess.Popen(
            [sys.executable, "-m", "tirl", *argv],
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            # a test suite started in the background (`make test &`) passes SIGINT on ignored, and a
            # Python started with SIGINT ignored never raises KeyboardInterrupt: restore the default
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    deadline = time.time() + 120
    while ready not in log.read_text() and p.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(delay)
    assert p.poll() is None, f"finished before the interrupt: {log.read_text()[-500:]}"
    t0 = time.time()
    p.send_signal(sig)
    rc = p.wait(timeout=60)
    return rc, log.read_text(), time.time() - t0


def test_rollout_keeps_the_finished_groups(tmp_path):
    out = tmp_path / "ro"
    rc, text, _ = _interrupt(
        ["rollout", "--model", "tiny-random", "--n-tasks", "300", "--group-size", "2", "--max-response-tokens", "64", "--out", str(out)],
        "(50%)",
        tmp_path,
    )
    assert rc == 130 and "Traceback" not in text and "interrupted: the finished trajectories are in" in text
    lines = (out / "trajectories.partial.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 600 and len(lines) % 2 == 0  # whole groups of 2
    assert all(json.loads(line)["stop_reason"] for line in lines)  # finished, scored trajectories
    assert not (out / "trajectories.jsonl").exists()


def test_tool_python_stops_a_running_cell_at_once(tmp_path):
    rc, text, seconds = _interrupt(["tool", "python", "--isolation", "none", "--code", "import time; time.sleep(60)"], "", tmp_path, delay=10.0)
    assert rc == 130 and "Traceback" not in text
    assert seconds < 5, f"took {seconds:.1f} s to stop"


def test_eval_stops_without_stray_task_errors(tmp_path):
    rc, text, _ = _interrupt(["eval", "--model", "tiny-random", "--n-tasks", "200", "--n", "2", "--max-response-tokens", "64"], "(10%)", tmp_path)
    assert rc == 130 and "Traceback" not in text and "exception was never retrieved" not in text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_train_stops_cleanly_and_resumes(tmp_path, sig):
    run = tmp_path / "runs" / "r"
    rc, text, _ = _interrupt(
        [
            "train",
            "grpo_arith",
            "--no-eval",
            "model.name=tiny-random",
            f"run.out_dir={tmp_path / 'runs'}",
            "run.name=r",
            "train.steps=40",
            "train.sft_first=false",  # the RL steps are what is interrupted; SFT would only add minutes under load
            "train.checkpoint_every=1",
            "rollout.max_response_tokens=48",
        ],
        "step    2 ",
        tmp_path,
        delay=1.0,
        sig=sig,
    )
    assert rc == 130 and "Traceback" not in text and "never retrieved" not in text, text[-2000:]
    assert f"with: tirl train --resume {run}" in text
    r = subprocess.run(
        [sys.executable, "-m", "tirl", "train", "--resume", str(run), "train.steps=3", "--no-eval"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=150,
    )
    assert r.returncode == 0, r.stderr[-2000:]  # the lock was released and the checkpoint is intact
    assert "resuming" in r.stderr and (run / "final_model").is_dir()
