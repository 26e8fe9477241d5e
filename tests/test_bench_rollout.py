"""``tirl bench rollout`` runs every engine on the same workload and reports the ratio; the
HF-generate baseline engine honours the engine interface (log-probs, stop strings, budgets)."""

import json

import torch
from typer.testing import CliRunner

from tirl.cli.main import app
from tirl.engine import FinishReason, GenerationRequest, SamplingParams
from tirl.engine.hf_generate import HFGenerateEngine


def test_hf_generate_engine_logprobs_and_budgets(tiny):
    eng = HFGenerateEngine(tiny.model, tiny.tokenizer, max_batch=4, seed=0, bf16=False)
    p = list(tiny.tokenizer("Compute 12 + 30.", add_special_tokens=False)["input_ids"])
    reqs = [GenerationRequest(p, SamplingParams(temperature=1.0, max_new_tokens=n)) for n in (3, 9)]
    short, long = eng.generate(reqs)
    assert len(short.token_ids) == 3 and short.finish_reason is FinishReason.LENGTH
    assert len(long.token_ids) <= 9
    with torch.no_grad():
        logits = tiny.model(torch.tensor([p + long.token_ids])).logits[0, len(p) - 1 : -1]
    want = torch.log_softmax(logits, -1).gather(-1, torch.tensor(long.token_ids)[:, None]).squeeze(-1)
    assert torch.allclose(want, torch.tensor(long.logprobs), atol=1e-3)


def test_bench_rollout_cli_compares_engines(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "rollout",
            "--model",
            "tiny-random",
            "--n-tasks",
            "2",
            "--group-size",
            "2",
            "--max-tokens",
            "12",
            "--engines",
            "tirl,hf-generate",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "speedup vs HF generate:" in res.output
    data = json.loads(out.read_text())
    assert [r["engine"] for r in data["results"]] == ["tirl", "hf-generate"]
    assert all(r["policy_tokens"] > 0 and r["trajectories"] == 4 for r in data["results"])
    bad = CliRunner().invoke(app, ["bench", "rollout", "--model", "tiny-random", "--engines", "nope"])
    assert bad.exit_code != 0 and "unknown engine" in bad.output
