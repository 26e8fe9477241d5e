"""Judges through the Engine interface: prompt files, reply parsing (unreadable replies are
observations, not errors), the Conciseness metric in evaluation."""

from __future__ import annotations

import pytest

from tirl.engine.base import Completion, FinishReason
from tirl.eval.metrics import conciseness
from tirl.judge.llm import ChatModel, last_tag, load_prompt, make_engine, render_prompt
from tirl.judge.roles import judge_conciseness, parse_step_edit, parse_yes_no, task_question
from tirl.types import Step, Task, ToolCall, Trajectory


class ReplyEngine:
    """Answers the k-th request with ``replies[k]`` and records the decoded prompts."""

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


def test_prompts_are_package_files_and_fill_placeholders():
    for name in ("conciseness", "step_redundant", "step_flaw", "repair_correct", "repair_wrong"):
        assert load_prompt(name).template.strip()
    text = render_prompt("conciseness", question="What is 2+2?", trajectory="<python>2+2</python> \\boxed{4}")
    assert "What is 2+2?" in text and "\\boxed{4}" in text and "$" not in text
    with pytest.raises(KeyError):
        render_prompt("conciseness", question="q")  # a missing field is a bug, not a silent blank
    with pytest.raises(FileNotFoundError, match="packaged prompts: .*conciseness"):
        load_prompt("nope")


def test_reply_parsing():
    assert last_tag("<answer>a</answer> then <answer> b </answer>", "answer") == "b"
    assert parse_yes_no("thinking... <answer>Yes.</answer>") is True
    assert parse_yes_no("<answer>no</answer>") is False
    assert parse_yes_no("I cannot tell") is None and parse_yes_no("<answer>unsure</answer>") is None
    e = parse_step_edit("Step: 2\nAnalysis: wrong sum\nCorrected Step: <think>fix</think>", n_steps=3)
    assert (e.step, e.analysis, e.corrected) == (2, "wrong sum", "<think>fix</think>")
    assert parse_step_edit("Step: no", 3).step is None
    assert parse_step_edit("Step: 7\nCorrected Step: x", 3).step is None  # out of range: no edit
    assert parse_step_edit("Step: 1", 3).step is None  # no corrected step: no edit
    assert task_question(Task("t", [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}], "1")) == "q"


def test_judge_conciseness_through_an_engine(tiny):
    def with_calls(n):
        return Trajectory("t", 0, [0], steps=[Step(0, ToolCall("python", {"code": "1"}))] * n, text=f"{n} calls")

    task = Task("t", "What is 1?", "1")
    trajs = [with_calls(0), with_calls(1), with_calls(2), with_calls(1)]
    engine = ReplyEngine(tiny.tokenizer, ["<answer>no</answer>", "<answer>yes</answer>", "no idea"])
    verdicts = judge_conciseness(ChatModel(engine), [task] * 4, trajs)
    # no calls: concise without asking; 'no' redundant -> concise; 'yes' -> not; unreadable -> None
    assert verdicts == [True, True, False, None]
    assert len(engine.prompts) == 3 and "What is 1?" in engine.prompts[0] and "1 calls" in engine.prompts[0]
    assert conciseness(verdicts) == pytest.approx(2 / 3) and conciseness([None]) is None


def test_make_engine_choices(tiny):
    policy = ReplyEngine(tiny.tokenizer, [])
    assert make_engine(None, policy) is policy and make_engine("policy", policy) is policy
    with pytest.raises(ValueError, match="name a configured endpoint"):
        make_engine("http://localhost:8000/v1", policy)
    from tirl.config import ConfigError, load_config
    from tirl.engine.openai import OpenAIEngine

    cfg = load_config(None, ["endpoints.judge.base_url=http://127.0.0.1:9/v1", "endpoints.judge.tokenizer=null"])
    remote = make_engine("openai:judge", policy, endpoints=cfg.endpoint)
    assert isinstance(remote, OpenAIEngine) and remote.tokenizer is tiny.tokenizer  # no tokenizer named: the policy's
    remote.close()
    with pytest.raises(ConfigError, match="no endpoint 'nope'"):
        make_engine("openai:nope", policy, endpoints=cfg.endpoint)
    assert make_engine("tiny-random", policy).tokenizer is not None


def test_eval_report_gets_conciseness_and_et_agent_metrics(tiny):
    from tirl.eval.runner import add_conciseness, summarize_eval
    from tirl.types import Observation, Origin, Segment, StopReason

    class Proto:
        def format_error(self, text):
            return None

    def traj(answer, obs_list, policy):
        segs, steps = [], []
        for obs in obs_list:
            segs += [Segment(Origin.POLICY, [1] * 0), Segment(Origin.TOOL, [2] * 7)]
            steps.append(Step(len(segs) - 2, ToolCall("python", {"code": "x"}), obs, len(segs) - 1))
        segs.append(Segment(Origin.POLICY, [3] * policy))
        return Trajectory("t", 0, [0], segs, steps, answer=answer, stop_reason=StopReason.ANSWER, text="t")

    ok, bad, empty = Observation(True, "4"), Observation(False, "Traceback", "E"), Observation(True, "  ")
    task = Task("t", "q", "4", {"verifier": "exact"})
    group = [traj("4", [ok, bad], 100), traj("4", [], 50), traj("5", [ok], 10), traj("4", [empty, bad], 200)]
    r = summarize_eval([task], [group], Proto(), n_samples=4, ks=(1,))
    # P = [1, 1, 0, 1]; T = [2, 0, 1, 2] -> Efficiency (1/2 + 1 + 0 + 1/2)/4 = 0.5
    assert r.efficiency == pytest.approx(0.5)
    # failed calls [1, 0, 0, 2] (an empty result counts as failed) -> (1/1 + 1/1 + 0 + 1/2)/4 = 0.625
    assert r.successful_execution == pytest.approx(0.625)
    # L = policy tokens [100, 50, 10, 200] -> (1/100 + 1/50 + 0 + 1/200)/4 = 0.00875, x1000 = 8.75
    assert r.reasoning_length == pytest.approx(8.75)
    assert r.conciseness is None and "conciseness (judge)" not in dict(r.rows())
    add_conciseness(r, [task], ChatModel(ReplyEngine(tiny.tokenizer, ["<answer>yes</answer>", "<answer>no</answer>", "??"])))
    # traj 1 has no calls (concise), judged: yes (redundant), no, unreadable -> 2 of 3 read are concise
    assert r.conciseness == pytest.approx(2 / 3) and r.conciseness_unread == 1
    assert dict(r.rows())["conciseness (judge)"] == "0.667 (1 unread)"
