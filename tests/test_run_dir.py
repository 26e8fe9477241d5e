"""A run directory belongs to one run: ``--resume DIR`` continues in DIR (a copied run never
writes into its original), two processes cannot share one, a fresh run never lands on an old
one, a damaged newest checkpoint or a torn metrics line does not block resume, and resume says
which overrides it applies and refuses those that change the algorithm."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tirl.cli.main import app
from tirl.config import ConfigError, load_config
from tirl.train.run_dir import RunDirError, claim

TINY = [
    "model.name=tiny-random",
    "train.tasks_per_step=2",
    "rollout.group_size=2",
    "train.checkpoint_every=1",
    "rollout.max_response_tokens=16",
    "rollout.max_turn_tokens=16",
    "tools.sandbox_workers=1",
    "train.save_trajectories=false",
    "strategy.save_trees=false",
    "optim.lr=1e-3",
]


def _train(*args: str):
    return CliRunner().invoke(app, ["train", *args, "--no-eval"])


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    res = _train("grpo", *TINY, f"run.out_dir={out}", "run.name=orig", "train.steps=2")
    assert res.exit_code == 0, res.output
    return out / "orig"


def test_resume_continues_in_the_given_directory(two_step_run, tmp_path):
    copy = tmp_path / "moved" / "copy"
    shutil.copytree(two_step_run, copy)
    before = (two_step_run / "metrics.jsonl").read_text()
    res = _train(f"--resume={copy}", "train.steps=3")
    assert res.exit_code == 0, res.output
    assert _steps(copy) == [1, 2, 3]
    assert (two_step_run / "metrics.jsonl").read_text() == before, "the original run was written to"
    assert not (two_step_run / "checkpoints" / "step_000003").exists()
    assert "train.steps: 2 -> 3" in res.output


@pytest.mark.slow
def test_resume_from_another_working_directory(two_step_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(two_step_run, copy)
    script = f"from tirl.cli.main import app; app(['train', '--resume', {str(copy)!r}, 'train.steps=3', '--no-eval'])"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert _steps(copy) == [1, 2, 3]
    assert not (elsewhere / "runs").exists(), "a stray runs/ directory was left"


def test_resume_refuses_what_changes_the_algorithm(two_step_run):
    for bad in (["algo.loss=gspo"], ["model.name=x"], ["run.name=y"]):
        res = _train(f"--resume={two_step_run}", *bad)
        assert res.exit_code == 2 and "would change" in res.output, res.output
    res = CliRunner().invoke(app, ["train", "dapo", f"--resume={two_step_run}"])
    assert res.exit_code == 2 and "drop the recipe name" in res.output


def test_a_fresh_run_never_lands_on_an_old_one(two_step_run):
    before = (two_step_run / "metrics.jsonl").read_text()
    res = _train("grpo", *TINY, f"run.out_dir={two_step_run.parent}", f"run.name={two_step_run.name}", "train.steps=1")
    assert res.exit_code == 2 and "already holds a run" in res.output and "--overwrite" in res.output
    assert (two_step_run / "metrics.jsonl").read_text() == before


def test_overwrite_starts_over(two_step_run, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(two_step_run, copy)
    res = _train("grpo", *TINY, f"run.out_dir={tmp_path}", "run.name=again", "train.steps=1", "--overwrite")
    assert res.exit_code == 0, res.output
    assert _steps(copy) == [1]
    assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == ["step_000001"]


def test_one_process_per_run_directory(tmp_path):
    held = claim(tmp_path / "r", fresh=True)
    code = textwrap.dedent(f"""
        from pathlib import Path
        from tirl.train.run_dir import claim, RunDirError
        try:
            claim(Path({str(tmp_path / "r")!r}), fresh=False)
        except RunDirError as e:
            print("refused:", e)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused:" in p.stdout and "in use by another tirl process" in p.stdout, p.stdout + p.stderr
    held.release()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused" not in p.stdout, p.stdout
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        claim(tmp_path / "f", fresh=True)


@pytest.mark.slow
def test_damaged_newest_checkpoint_falls_back(two_step_run, tmp_path):
    for damage in ("truncate-weights", "missing-optimizer", "bad-manifest"):
        copy = tmp_path / damage
        shutil.copytree(two_step_run, copy)
        newest = copy / "checkpoints" / "step_000002"
        if damage == "truncate-weights":
            w = next((newest / "model").glob("*.safetensors"))
            w.write_bytes(w.read_bytes()[:1000])
        elif damage == "missing-optimizer":
            (newest / "optimizer.pt").unlink()
        else:
            (newest / "COMPLETE").write_text("{not json")
        with open(copy / "metrics.jsonl", "a") as f:
            f.write('{"step": 3, "reward/me')  # a torn last line
        res = _train(f"--resume={copy}", "train.steps=3")
        assert res.exit_code == 0, (damage, res.output)
        assert "step_000002 is damaged" in res.output and "resumed from step_000001" in res.output, res.output
        assert _steps(copy) == [1, 2, 3]


def test_non_finite_values_are_config_errors():
    for bad in ("optim.lr=inf", "optim.lr=nan", "algo.clip_low=.nan"):
        with pytest.raises(ConfigError, match="finite"):
            load_config("grpo", [bad])
    for bad in ("../../x", "a/b", "..", ""):
        with pytest.raises(ConfigError, match="run.name"):
            load_config("grpo", [f"run.name={bad}"])


def test_final_model_is_replaced_whole(tiny, tmp_path):
    """final_model is written beside the run and renamed into place: a second export replaces
    the first, and no temporary directory is left behind."""
    from types import SimpleNamespace

    from tirl.train.resolve import export_final_model, resolve_eval_model

    (tmp_path / "config.yaml").write_text("run: {name: r}\n")
    policy = SimpleNamespace(model=tiny.model, lora=False)
    for _ in range(2):
        out = export_final_model(policy, tiny.tokenizer, tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "final_model"]
        assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    assert resolve_eval_model(str(tmp_path)) == str(out)


def test_a_resumed_run_keeps_the_evaluations_of_its_first_part(tmp_path):
    evals = ["task.n_eval=2", "train.eval_samples=1"]
    res = CliRunner().invoke(app, ["train", "grpo", *TINY, *evals, f"run.out_dir={tmp_path}", "run.name=r", "train.steps=1"])
    assert res.exit_code == 0, res.output
    first = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert set(first) == {"before", "after"}
    res = CliRunner().invoke(app, ["train", f"--resume={tmp_path / 'r'}", "train.steps=2"])
    assert res.exit_code == 0, res.output
    both = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert set(both) == {"before", "after"} and both["before"] == first["before"]  # the untrained model's evaluation is not lost
