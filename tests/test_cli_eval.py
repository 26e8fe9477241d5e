"""`tirl eval` takes section.field=value overrides after its options (e.g. an OpenAI judge's endpoint)."""

import json

from typer.testing import CliRunner

from tirl.cli.main import app


def test_eval_applies_overrides(tmp_path):
    out = tmp_path / "ev"
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            "tiny-random",
            "--n",
            "1",
            "--n-tasks",
            "2",
            "--max-response-tokens",
            "24",
            "--out",
            str(out),
            "rollout.max_turn_tokens=6",
            "tools.sandbox_workers=1",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    # every generation call stopped at the overridden 6-token turn budget
    for r in rows:
        for seg in r["segments"]:
            if seg["origin"] == "policy":
                assert len(seg["token_ids"]) <= 6


def test_eval_rejects_a_bad_override():
    res = CliRunner().invoke(app, ["eval", "--model", "tiny-random", "rollout.max_turn_tokenz=6"])
    assert res.exit_code != 0
    assert "rollout.max_turn_tokenz" in res.output
