"""AutoTraj repair end to end with scripted engines: triage, the repairer sees the question and
the bad trajectory, its tool calls run through tirl's tools, acceptance, SFT set and pairs."""

from __future__ import annotations

import asyncio

from fake_engine import ScriptedEngine

from tirl.config import RepairConfig
from tirl.curate.repair import repair_groups
from tirl.protocol import TagProtocol
from tirl.rewards.compose import apply_rewards
from tirl.rewards.presets import default_rewards
from tirl.rollout import RolloutConfig, rollout
from tirl.types import Origin, Task

CLEAN = "<think>2 plus 2</think>\n<answer>\\boxed{4}</answer>"
HEDGED = "<think>maybe 2 plus 2 maybe 2 plus 2 maybe</think>\n<answer>\\boxed{4}</answer>"
WRONG = "<think>guess</think>\n<answer>\\boxed{5}</answer>"
REPAIR = ["<think>add</think>\n<python>2+2</python>", "<think>sum known</think>\n<answer>\\boxed{4}</answer>"]


def _roll(engine, proto, tasks):
    return asyncio.run(rollout(engine, proto, tasks, RolloutConfig(group_size=1, max_response_tokens=200)))


def test_repair_pipeline(tiny, echo_tool):
    tok = tiny.tokenizer
    proto = TagProtocol([echo_tool])
    a = Task("a", "What is 2+2?", "4", {"verifier": "exact"})
    b = Task("b", "What is 3+6?", "9", {"verifier": "exact"})
    clean, hedged = _roll(ScriptedEngine(tok, [CLEAN]), proto, [a])[0], _roll(ScriptedEngine(tok, [HEDGED]), proto, [a])[0]
    wrong = _roll(ScriptedEngine(tok, [WRONG]), proto, [b])[0]
    groups = [clean + hedged, wrong]
    apply_rewards(list(zip([a, b], groups)), default_rewards(proto))
    repairer = ScriptedEngine(tok, REPAIR)
    res = asyncio.run(repair_groups([a, b], groups, proto, tok, repairer, RepairConfig(), max_response_tokens=200))

    c = res.counts
    # task a: clean scores 1.0, hedged 0.4*0 + ... < 0.90 -> keep the best (1.0 >= 0.86), repair the hedged one
    assert (c["correct"], c["kept"], c["to_repair_correct"], c["to_repair_wrong"]) == (2, 1, 1, 1)
    # the repairer saw the question and the bad trajectory itself
    first_prompt = tok.decode(repairer.requests[0].prefix_ids)
    assert "What is 2+2?" in first_prompt and "maybe 2 plus 2" in first_prompt
    assert "What is 3+6?" in tok.decode(repairer.requests[1].prefix_ids) and "guess" in tok.decode(repairer.requests[1].prefix_ids)
    out_a, out_b = res.outcomes
    # its tool call ran for real through tirl's tool: the observation is the tool's, not the model's
    assert echo_tool.calls and "echo 2+2 #1" in out_a.repaired.text
    assert [s.origin for s in out_a.repaired.segments] == [Origin.EXPERT, Origin.TOOL, Origin.EXPERT]
    # moved onto the task's own prompt, not the repair prompt
    assert out_a.repaired.prompt_token_ids == proto.prompt_ids(tok, a) and out_a.repaired.task_id == "a"
    assert out_a.correct and out_a.accepted == (out_a.score >= 0.86)
    assert not out_b.correct and not out_b.accepted  # the repair of b still answers 4: a hard case
    assert c["accepted"] + c["hard_cases"] == 2
    # SFT set: the kept original (+ the accepted repair); pairs: repaired ≻ original
    assert res.sft[0] is clean[0] and all(t.rewards["correct"] == 1.0 for t in res.sft)
    assert len(res.pairs) == c["accepted"]
    if out_a.accepted:
        p = res.pairs[0]
        assert p.prompt == "What is 2+2?" and "sum known" in p.chosen and "maybe" in p.rejected
    assert out_a.accepted  # the concise repair (score printed by a failure) passes 0.86


def test_cli_repair_runs_on_tiny_random(tmp_path):
    import json

    from typer.testing import CliRunner

    from tirl.cli.main import app

    res = CliRunner().invoke(
        app,
        [
            "repair",
            "model.name=tiny-random",
            "rollout.group_size=2",
            "rollout.max_response_tokens=24",
            "rollout.max_turn_tokens=24",
            "task.difficulty=1",
            "--n-tasks",
            "2",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["trajectories"] + summary["infra_dropped"] == 4
    assert summary["accepted"] + summary["hard_cases"] + summary["infra_dropped"] >= summary["to_repair_wrong"]
    for name in ("sft.jsonl", "pairs.jsonl", "rollouts.jsonl", "repairs.jsonl"):
        assert (tmp_path / name).exists()


def test_cli_repair_with_the_reference_solver_as_repairer(tmp_path):
    """An expert source as repairer (the oracle used when no model stronger than the policy is at
    hand): a random policy is always wrong, the reference solver's solutions are correct and pass
    the acceptance rule, so every wrong trajectory yields a pair (repaired ≻ original)."""
    import json

    from typer.testing import CliRunner

    from tirl.cli.main import app
    from tirl.rm.pairs import read_pairs

    res = CliRunner().invoke(
        app,
        [
            "repair",
            "model.name=tiny-random",
            "rollout.group_size=2",
            "rollout.max_response_tokens=24",
            "rollout.max_turn_tokens=24",
            "task.difficulty=1",
            "repair.repairer=arith-reference",
            "tools.sandbox_workers=1",
            "--n-tasks",
            "2",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["correct"] == 0 and s["to_repair_wrong"] == s["trajectories"] == 4
    assert s["accepted"] == 4 and s["hard_cases"] == 0
    pairs = read_pairs(tmp_path / "pairs.jsonl")
    assert len(pairs) == 4 and all("<python>" in p.chosen and "\\boxed{" in p.chosen for p in pairs)
    sft = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert len(sft) == 4 and {t["sample"] for t in sft} == {0, 1}


def test_cli_repair_names_a_missing_repairer_file(tmp_path):
    from typer.testing import CliRunner

    from tirl.cli.main import app

    res = CliRunner().invoke(
        app, ["repair", "model.name=tiny-random", f"repair.repairer={tmp_path / 'none.jsonl'}", "--n-tasks", "1", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code != 0 and "none.jsonl" in res.output and "Traceback" not in res.output


def test_cli_repair_reference_repairer_needs_arith(tmp_path):
    from typer.testing import CliRunner

    from tirl.cli.main import app

    res = CliRunner().invoke(app, ["repair", "model.name=tiny-random", "task.name=champ", "repair.repairer=arith-reference", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "arith, lookup tasks only" in res.output
