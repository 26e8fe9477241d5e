"""The recipe comparison scripts run end to end on tiny-random (--quick) and report every row
with equal budgets: GRPO vs ARPO vs ELPO, zero-RL vs SFT-then-RL vs E3-TIR (+ ablations), and
GRPO vs ET-Agent (the calibration pipeline, run as tirl subprocesses)."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _script(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_compare_recipes_quick(tmp_path):
    res = _script("compare_recipes").main(["--quick", "--out", str(tmp_path)])
    rows = {r["name"]: r for r in res["rows"]}
    assert list(rows) == ["start", "grpo", "arpo", "elpo"]
    for name in ("grpo", "arpo", "elpo"):
        r = rows[name]
        # every task has the same number of samples, so the unbiased pass@1 is the accuracy
        assert r["pass@1"] == pytest.approx(r["accuracy"]), (name, r)
        # the same rollout budget: steps x tasks x budget trajectories (2 x 2 x 4)
        assert r["train_trajectories"] == 16, (name, r["train_trajectories"])
    assert (tmp_path / "results.md").read_text().count("\n") >= 6
    assert list((tmp_path / "elpo" / "trees").glob("step_*.jsonl"))


@pytest.mark.slow
def test_compare_e3_quick(tmp_path):
    res = _script("compare_e3").main(["--quick", "--out", str(tmp_path)])
    rows = {r["name"]: r for r in res["rows"]}
    assert list(rows) == ["start", "zero_rl", "sft_then_rl", "e3_tir", "e3_no_aagd", "e3_no_branch"]
    assert rows["zero_rl"]["expert_samples"] == 0
    assert rows["sft_then_rl"]["expert_samples"] == 8  # the whole expert set
    for name in ("e3_tir", "e3_no_aagd", "e3_no_branch"):
        assert 0 < rows[name]["expert_samples"] <= res["e3_expert_samples_max"] == 2
    assert {r["rollouts"] for n, r in rows.items() if n != "start"} == {16}  # equal rollout budget


@pytest.mark.slow
def test_compare_calibration_quick(tmp_path):
    res = _script("compare_calibration").main(["--quick", "--no-start-eval", "--out", str(tmp_path)])
    rows = {r["name"]: r for r in res["rows"]}
    assert list(rows) == ["grpo", "et_agent"]
    assert rows["et_agent"]["rl_steps"] == 2 and len(rows["et_agent"]["pareto_selected"]) == 2
    for r in rows.values():
        assert r["pass@1"] == pytest.approx(r["accuracy"]) and r["efficiency"] is not None and r["wall_s"] > 0
    stages = json.loads((tmp_path / "results.json").read_text())["rows"][1]["stages_s"]
    assert list(stages) == ["et_flywheel", "et_curriculum"] or list(stages) == ["et_flywheel", "et_rft", "et_curriculum"]
    assert (tmp_path / "commands.sh").read_text().startswith("tirl train grpo")
