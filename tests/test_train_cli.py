"""`tirl train` end to end on tiny-random with the SFT warm-up: the run directory holds what the
README promises (resolved config, per-step metrics, evaluations before / after SFT / after, the
plot, checkpoints, sampled trajectories, the HTML report), and the SFT warm-up lowers its own loss."""

import json

import pytest
from typer.testing import CliRunner

from tirl.cli.main import app
from tirl.config import SFTConfig
from tirl.models import load_model
from tirl.train.sft import run_sft


@pytest.mark.slow
def test_train_with_sft_warmup_writes_the_run(tmp_path):
    args = [
        "train",
        "sft_then_grpo",
        "model.name=tiny-random",
        f"run.out_dir={tmp_path}",
        "run.name=r",
        "train.steps=2",
        "train.tasks_per_step=2",
        "rollout.group_size=2",
        "train.checkpoint_every=1",
        "rollout.max_response_tokens=24",
        "rollout.max_turn_tokens=12",
        "tools.sandbox_workers=1",
        "task.n_eval=2",
        "train.eval_samples=1",
        "sft.n_examples=8",
        "sft.batch_size=4",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    run = tmp_path / "r"
    for name in ("config.yaml", "metrics.jsonl", "eval.json", "sft_metrics.jsonl", "plots/curves.png", "final_model", "report.html"):
        assert (run / name).exists(), name
    assert sorted(p.name for p in (run / "checkpoints").iterdir())  # at least the last one kept
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in steps] == [0, 1, 2]
    assert "eval/accuracy" in steps[0] and "eval_sft/accuracy" in steps[0] and "eval/accuracy" in steps[-1]
    for key in ("reward/mean", "loss/pg", "policy/grad_norm", "rollout/tool_calls", "time/step_s"):
        assert key in steps[1], key
    # each phase's own peak resident memory, and what the engine holds beside the model
    for key in ("mem/rollout_peak_gb", "mem/update_peak_gb", "mem/engine_kv_cache_gb", "mem/engine_weights_copy_gb"):
        assert 0 < steps[1][key] < 64, key
    assert 0 < steps[0]["mem/sft_peak_gb"] and 0 < steps[0]["mem/eval_peak_gb"] and 0 < steps[0]["mem/eval_sft_peak_gb"]
    assert set(json.loads((run / "eval.json").read_text())) == {"before", "after_sft", "after"}
    assert len((run / "sft_metrics.jsonl").read_text().splitlines()) == 2  # 8 examples / batch 4
    assert "held-out arith" in res.output and "plots:" in res.output and "report:" in res.output
    assert "recipe: sft_then_grpo" in (run / "config.yaml").read_text()
    html = (run / "report.html").read_text()  # the report holds the three evaluations
    assert all(f'"tag":"{tag}"' in html for tag in ("before", "after_sft", "after"))
    from tirl.report.browser import Chromium, find_chromium

    if find_chromium() is not None:  # the demo's shape (SFT, then GRPO): the page opens without an error
        with Chromium() as b:
            b.open((run / "report.html").as_uri(), ready="document.body.dataset.ready === '1'")
            for tab in ("trajectories", "trees", "evals", "overview"):
                b.click(f"#tabs button[data-tab={tab}]")
            assert b.errors == []


@pytest.mark.slow
def test_sft_lowers_its_loss(tiny):
    import asyncio

    from tirl.protocol import TagProtocol
    from tirl.tasks import load_tasks
    from tirl.tools import PythonSandbox, SandboxConfig
    from tirl.train.sft import reference_trajectories

    async def make():
        sb = PythonSandbox(SandboxConfig(workers=1))
        try:
            return await reference_trajectories(load_tasks("arith", n=4, seed=0, split="train"), TagProtocol([sb]), tiny.tokenizer)
        finally:
            await sb.aclose()

    trajs = asyncio.run(make())
    assert len(trajs) == 4
    lm = load_model("tiny-random")  # a private copy: the session fixture stays untrained
    hist = run_sft(lm.model, trajs, SFTConfig(epochs=8, lr=1e-3, batch_size=4), pad_id=lm.tokenizer.pad_token_id or 0)
    assert len(hist) == 8 and hist[0].total_steps == 8
    assert hist[-1].loss < 0.95 * hist[0].loss  # same 4 examples every epoch: the NLL must fall


def test_logp_gap_warning_threshold():
    from tirl.train.rl_trainer import logp_gap_warning

    assert logp_gap_warning(0.012, 0.05) is None and logp_gap_warning(None, 0.05) is None
    assert logp_gap_warning(0.3, 0.0) is None  # 0: never warn
    assert "0.300 nats/token" in logp_gap_warning(0.3, 0.05)


def test_a_gap_above_the_threshold_is_printed_at_its_step(tmp_path):
    args = [
        "train",
        "grpo",
        "--no-eval",
        "model.name=tiny-random",
        f"run.out_dir={tmp_path}",
        "run.name=r",
        "train.steps=2",
        "train.tasks_per_step=1",
        "rollout.group_size=2",
        "rollout.max_response_tokens=16",
        "tools.sandbox_workers=1",
        "train.checkpoint_every=0",
        "train.logp_gap_warn=1e-12",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    steps = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    warned = [m["step"] for m in steps if m.get("policy/logp_gap_engine", 0.0) > 1e-12]
    assert warned, "tiny-random in bf16/fp32 should show some gap"
    for step in warned:
        assert f"warning: step {step}: the sampler's and the trainer's log-probs differ" in res.output
