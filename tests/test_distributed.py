"""Data-parallel updates with torch.distributed (gloo, 2 ranks on CPU, tiny-random), launched by
torchrun as a user launches them:

- DDP: the gradient of 2 ranks, each on its token-balanced shard of the batch, equals one
  process's gradient of the whole batch (fp32; tolerance 1e-6 absolute, the largest entry is
  about 0.07; measured 6e-8), and the loss and token counts are the whole batch's;
- FSDP2: the same step gives the DDP gradient (1e-6) and, with AdamW, the DDP parameters
  (within 5% of the learning rate: Adam divides by the gradient's magnitude, so entries whose
  gradient is ~0 amplify rounding; measured 0.8%);
- a sharded checkpoint written by 2 ranks loads into a fresh sharded model and optimiser, and
  the next step equals the uninterrupted run's exactly;
- ``torchrun --nproc_per_node 2`` of ``tirl train`` runs end to end (checkpoints from rank 0,
  the same metrics as one process), and an FSDP run resumes from its shards with ``--resume``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_helpers import SMALL
from typer.testing import CliRunner

from tirl.cli.main import app

HERE = Path(__file__).parent
DRIVER = HERE / "dist_driver.py"
RUN = SMALL + ["optim.bf16=false", "train.checkpoint_every=1", "--no-eval"]


def torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=HERE.parent)


def one_process(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")} | {"PYTHONPATH": str(HERE.parent)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=HERE.parent)


def result(p: subprocess.CompletedProcess) -> dict:
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    line = next(x for x in p.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.timeout(600)
def test_ddp_and_fsdp_updates_equal_one_process_and_shards_resume(tmp_path):
    r = result(torchrun(str(DRIVER), "all", str(tmp_path)))
    g = r["grads"]
    assert sum(g["rows"]) == 15 and all(g["rows"])  # both ranks trained a share
    assert abs(g["tokens"][0] - g["tokens"][1]) <= 45  # token-balanced (a task's rows are 28-45 tokens together)
    assert g["max_abs_diff"] <= 1e-6 and g["grad_scale"] > 0.01
    assert g["n_tokens"][0] == g["n_tokens"][1] and g["n_rows"] == [15, 15]  # the whole batch's counts
    assert g["loss"][0] == pytest.approx(g["loss"][1], abs=1e-6) and g["grad_norm"][0] == pytest.approx(g["grad_norm"][1], rel=1e-5)

    f = r["fsdp"]
    assert f["sgd"]["fsdp_vs_ddp"] <= 1e-6 and f["sgd"]["moved"] > 0.01
    assert f["adamw"]["fsdp_vs_ddp"] <= 0.05 * 1e-3 and f["adamw"]["moved"] > 5e-4
    assert f["adamw"]["grad_norm"][0] == pytest.approx(f["adamw"]["grad_norm"][1], rel=1e-5)

    c = r["ckpt"]
    assert c["step"] == 1 and c["resumed_vs_uninterrupted"] == 0.0
    assert {"__0_0.distcp", "__1_0.distcp", ".metadata"} <= set(c["shard_files"])  # both ranks wrote their shard


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_torchrun_ddp_run_end_to_end_equals_one_process(tmp_path):
    p = torchrun(str(DRIVER), "train", str(tmp_path / "ddp"), *RUN)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "data-parallel update: 2 ranks (ddp, gloo)" in p.stderr
    q = one_process(str(DRIVER), "train", str(tmp_path / "one"), *RUN)
    assert q.returncode == 0, q.stderr[-3000:]
    two, one = metrics(tmp_path / "ddp"), metrics(tmp_path / "one")
    assert [m["step"] for m in two] == [1, 2]
    for a, b in zip(two, one):
        assert a["reward/mean"] == b["reward/mean"] and a["train/tokens"] == b["train/tokens"] == b["train/tokens"]
        assert a["policy/grad_norm"] == pytest.approx(b["policy/grad_norm"], rel=1e-5) and a["policy/grad_norm"] > 0
    ckpt = tmp_path / "ddp" / "checkpoints" / "step_000002"
    assert (ckpt / "COMPLETE").exists() and (ckpt / "model").is_dir() and (tmp_path / "ddp" / "final_model").is_dir()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_torchrun_fsdp_run_resumes_from_its_shards(tmp_path):
    run = tmp_path / "fsdp"
    args = [
        "-m",
        "tirl",
        "train",
        f"run.out_dir={tmp_path}",
        "run.name=fsdp",
        *SMALL,
        "cluster.parallel=fsdp",
        "train.checkpoint_every=1",
        "--no-eval",
    ]
    p = torchrun(*args)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert (run / "checkpoints" / "step_000002" / "shards" / ".metadata").exists()
    assert not (run / "checkpoints" / "step_000002" / "model").exists()
    p = torchrun("-m", "tirl", "train", "--resume", str(run), "train.steps=3", "--no-eval")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "resuming" in p.stderr and [m["step"] for m in metrics(run)] == [1, 2, 3]
    # a sharded checkpoint cannot be resumed by one process: one line says why
    q = CliRunner().invoke(app, ["train", "--resume", str(run), "train.steps=4", "cluster.parallel=ddp", "--no-eval"])
    assert q.exit_code == 2 and "FSDP shards: resume it with cluster.parallel=fsdp" in q.output


def test_world_size_without_a_launcher_is_one_line(tmp_path):
    r = CliRunner().invoke(app, ["train", "model.name=tiny-random", f"run.out_dir={tmp_path}", "cluster.train_world_size=2"])
    assert r.exit_code == 2
    assert "launch with torchrun --nproc_per_node 2 -m tirl train" in r.output and len(r.output.strip().splitlines()) == 1
