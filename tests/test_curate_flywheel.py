"""ET-Agent data flywheel with scripted policy and judge: best-not-evolved selection, redundant
step removal, first-flaw correction with real tool execution, hint injection, fresh re-rollout,
the on-disk buffer and resume, the RFT filter."""

from __future__ import annotations

import asyncio
import json

from fake_engine import ScriptedEngine

from tirl.config import FlywheelConfig
from tirl.curate.flywheel import Buffer, Entry, best_unevolved, rft_set, run_flywheel, step_texts
from tirl.engine.base import Completion, FinishReason
from tirl.judge.llm import ChatModel
from tirl.protocol import TagProtocol
from tirl.rollout import RolloutConfig
from tirl.types import Origin, Step, StopReason, Task, ToolCall, Trajectory

POLICY = ["<think>compute</think>\n<python>2+2</python>", "<think>again</think>\n<python>2+2</python>", "<answer>\\boxed{4}</answer>"]


class ReplyEngine:
    def __init__(self, tokenizer, replies):
        self.tokenizer = tokenizer
        self.replies = list(replies)
        self.prompts = []

    def generate(self, requests):
        out = []
        for r in requests:
            self.prompts.append(self.tokenizer.decode(r.prefix_ids))
            ids = list(self.tokenizer(self.replies.pop(0), add_special_tokens=False)["input_ids"])
            out.append(Completion(ids, [0.0] * len(ids), [0.0] * len(ids), FinishReason.EOS))
        return out


def test_best_unevolved_order():
    def e(uid, correct, calls, evolved=False):
        t = Trajectory("t", 0, [0], steps=[Step(0, ToolCall("python", {}))] * calls, stop_reason=StopReason.ANSWER)
        return Entry(uid, "t", 0, "init", None, correct, t, evolved)

    assert best_unevolved([e("a", False, 0), e("b", True, 3), e("c", True, 1)]).uid == "c"
    assert best_unevolved([e("c", True, 1, evolved=True), e("a", False, 0)]).uid == "a"
    assert best_unevolved([e("c", True, 1, evolved=True)]) is None


def test_flywheel_rounds_buffer_and_resume(tiny, echo_tool, tmp_path):
    tok = tiny.tokenizer
    proto = TagProtocol([echo_tool])
    a = Task("a", "What is 2+2?", "4", {"verifier": "exact"})
    b = Task("b", "What is 3+6?", "9", {"verifier": "exact"})
    policy = ScriptedEngine(tok, POLICY)
    rcfg = RolloutConfig(group_size=1, max_tool_calls=4, max_response_tokens=300)
    judge_engine = ReplyEngine(
        tok,
        [
            # round 1, task a (correct, 2 calls): step 2 is redundant; the corrected step answers
            "Step: 2\nCorrected Step: <think>I know it is 4.</think>\n<answer>\\boxed{4}</answer>",
            # round 1, task b (wrong): step 1 is flawed; the corrected step runs new code
            "Step: 1\nAnalysis: wrong numbers\nCorrected Step: <think>3 plus 6</think>\n<python>3+6</python>",
        ],
    )
    cfg = FlywheelConfig(rounds=1, initial_samples=1)
    buf = asyncio.run(run_flywheel([a, b], tmp_path, policy, ChatModel(judge_engine), proto, tok, rcfg, cfg))
    assert buf.completed == 1
    ops = sorted((e.task_id, e.op, e.correct) for e in buf.entries.values())
    assert ops == [("a", "init", True), ("a", "redundant", True), ("b", "flaw", False), ("b", "hint", False), ("b", "init", False)]
    # the judge saw numbered steps with their real tool results
    assert "Step 1:" in judge_engine.prompts[0] and "Step 2:" in judge_engine.prompts[0] and "echo 2+2" in judge_engine.prompts[0]
    by_op = {(e.task_id, e.op): e for e in buf.entries.values()}
    red = by_op[("a", "redundant")].traj
    # step 1 kept (policy action + its tool result), step 2 replaced by the judge's step, which answered
    assert [s.origin for s in red.segments] == [Origin.POLICY, Origin.TOOL, Origin.EXPERT] and red.n_tool_calls == 1
    assert red.prompt_token_ids == proto.prompt_ids(tok, a) and red.answer == "4"
    flaw = by_op[("b", "flaw")].traj
    # the corrected step's call was executed for real, then the policy continued (its turn 1 and 2)
    assert flaw.segments[0].origin is Origin.EXPERT and "echo 3+6" in flaw.text and flaw.text.endswith("</answer>")
    assert flaw.steps[0].call.arguments["code"] == "3+6" and flaw.n_tool_calls == 2
    # the continuation's session replayed the corrected cell first: the policy's next call is the session's 2nd
    assert "echo 2+2 #2" in flaw.text and flaw.metrics["replayed_calls"] == 1.0
    hint = by_op[("b", "hint")].traj
    assert "Wait, perhaps I should use Python tools" in hint.text and hint.text.index("echo 2+2 #1") < hint.text.index("Wait")
    assert all(e.evolved for e in buf.entries.values() if e.op == "init")
    assert json.loads((tmp_path / "state.json").read_text()) == {"completed_rounds": 1}

    # an interrupted round 2 left a line behind: resume drops it and redoes round 2
    with open(tmp_path / "buffer.jsonl", "a") as f:
        f.write(json.dumps({"evolved": "a:stale", "round": 2}) + "\n")
    judge_engine.replies = ["Step: no", "I am not sure"]  # a: nothing redundant -> re-rollout; b: unreadable -> hint only
    buf2 = asyncio.run(run_flywheel([a, b], tmp_path, policy, ChatModel(judge_engine), proto, tok, rcfg, FlywheelConfig(rounds=2, initial_samples=1)))
    ops2 = sorted((e.task_id, e.op, e.round) for e in buf2.entries.values() if e.round == 2)
    assert ops2 == [("a", "rerollout", 2), ("b", "hint", 2)]
    assert len(buf2.entries) == 7 and "a:stale" not in (tmp_path / "buffer.jsonl").read_text()
    # round 2 picked a's shortest correct trajectory (the 1-call redundant-removal result)
    assert buf2.entries[by_op[("a", "redundant")].uid].evolved
    # a third call with rounds=2 has nothing left to do
    buf3 = asyncio.run(
        run_flywheel([a, b], tmp_path, policy, ChatModel(ReplyEngine(tok, [])), proto, tok, rcfg, FlywheelConfig(rounds=2, initial_samples=1))
    )
    assert len(buf3.entries) == 7

    rft = rft_set(Buffer(tmp_path).load(), proto)
    assert rft and all(t.task_id == "a" and t.rewards["correct"] == 1.0 for t in rft)
    # Phase 1 (RFT) is tirl sft on this file: the SFT loader keeps every one of them
    from tirl.rollout import write_jsonl
    from tirl.train.sft import file_trajectories, sft_row

    write_jsonl(tmp_path / "rft.jsonl", rft)
    back = file_trajectories(str(tmp_path / "rft.jsonl"))
    assert len(back) == len(rft)
    row = sft_row(next(t for t in back if any(s.origin is Origin.EXPERT for s in t.segments)))
    # the judge's edited step (EXPERT) is trained, tool results never are
    assert 0 < sum(row.loss_mask) < len(row.input_ids) - len(back[0].prompt_token_ids)
    assert len(step_texts(red, tok)) == 2


def test_cli_flywheel_runs_and_resumes_on_tiny_random(tmp_path):
    from typer.testing import CliRunner

    from tirl.cli.main import app

    args = [
        "flywheel",
        "model.name=tiny-random",
        "flywheel.rounds=1",
        "flywheel.initial_samples=1",
        "flywheel.judge_max_tokens=16",
        "rollout.max_response_tokens=24",
        "rollout.max_turn_tokens=24",
        "task.difficulty=1",
        "--n-tasks",
        "2",
        "--out",
        str(tmp_path),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "state.json").read_text()) == {"completed_rounds": 1}
    n = len((tmp_path / "buffer.jsonl").read_text().splitlines())
    assert n >= 2 and (tmp_path / "rft.jsonl").exists()
    res = CliRunner().invoke(app, args)  # all rounds done: resumes, adds nothing
    assert res.exit_code == 0 and "resuming: 1 round(s) done" in res.output
    assert len((tmp_path / "buffer.jsonl").read_text().splitlines()) == n


def test_cli_curriculum_one_round_on_tiny_random(tmp_path):
    from typer.testing import CliRunner

    from tirl.cli.main import app

    res = CliRunner().invoke(
        app,
        [
            "curriculum",
            "et_agent",
            "model.name=tiny-random",
            f"run.out_dir={tmp_path}",
            "run.name=cur",
            "pareto.rounds=1",
            "pareto.n_candidates=3",
            "pareto.samples_per_task=2",
            "pareto.n_select=2",
            "pareto.mixed_only=false",
            "train.steps=1",
            "train.tasks_per_step=2",
            "rollout.group_size=2",
            "rollout.max_response_tokens=16",
            "rollout.max_turn_tokens=16",
            "task.difficulty=1",
        ],
    )
    assert res.exit_code == 0, res.output
    rdir = tmp_path / "cur" / "round1"
    assert len((rdir / "tasks.jsonl").read_text().splitlines()) == 2
    assert json.loads((rdir / "pareto.json").read_text())["candidates"] == 3
    assert (rdir / "final_model" / "config.json").exists()
    metrics = [json.loads(x) for x in (rdir / "metrics.jsonl").read_text().splitlines()]
    assert any("reward/mean" in m for m in metrics)
    res = CliRunner().invoke(app, ["curriculum", "et_agent", "model.name=tiny-random", f"run.out_dir={tmp_path}", "run.name=cur", "pareto.rounds=1"])
    assert res.exit_code == 0 and "done earlier" in res.output
