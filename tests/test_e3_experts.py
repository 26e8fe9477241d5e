"""Expert sources behind one interface: the arith reference solver, a rollout JSONL, a model behind
an Engine (scripted local engine, OpenAI-compatible endpoint). Every expert trajectory is in the
policy's ids, its turns are EXPERT segments and its observations come from tirl's tools."""

import asyncio
import json

import httpx
import pytest
from fake_engine import ScriptedEngine

from tirl.engine import OpenAIEngine, OpenAIEngineConfig
from tirl.protocol import TagProtocol
from tirl.rollout import RolloutConfig, loss_mask, write_jsonl
from tirl.rollout.experts import (
    EngineExperts,
    FileExperts,
    ReferenceExperts,
    correct,
    expert_tokens,
    make_expert_source,
    retokenise,
)
from tirl.tasks import load_tasks
from tirl.tools import make_tool
from tirl.types import Origin, StopReason, Task

TASK = Task(id="q42", prompt="What is 6 times 7?", answer="42")


@pytest.fixture(scope="module")
def python_tool():
    tool = make_tool("python", workers=1, timeout_s=10.0)
    yield tool
    asyncio.run(tool.aclose())


def _origins(tr):
    return [s.origin for s in tr.segments]


def _check_expert(tr, proto, tok, task):
    assert tr.prompt_token_ids == proto.prompt_ids(tok, task)
    assert all(o in (Origin.EXPERT, Origin.TOOL) for o in _origins(tr))
    assert not any(loss_mask(tr)), "an expert token is trainable by the on-policy loss"
    assert expert_tokens(tr) == sum(len(s) for s in tr.segments if s.origin is Origin.EXPERT) > 0


def test_reference_expert_runs_the_script_for_real(tiny, python_tool):
    tok = tiny.tokenizer
    proto = TagProtocol([python_tool])
    tasks = load_tasks("arith", n=2, seed=0, split="train", difficulty=3)
    trajs = asyncio.run(ReferenceExperts().solve(tasks, proto, tok))
    for task, tr in zip(tasks, trajs):
        _check_expert(tr, proto, tok, task)
        assert tr.stop_reason is StopReason.ANSWER and correct(task, tr)
        calls = [s for s in tr.steps if s.call is not None]
        assert calls and all(s.observation.ok for s in calls)
        assert calls[-1].observation.output.strip() == task.answer  # the sandbox printed the answer
    with pytest.raises(ValueError, match="solves arith, lookup tasks only"):
        asyncio.run(ReferenceExperts().solve([TASK], proto, tok))


def test_engine_expert_tool_calls_are_executed_by_tirl(tiny, python_tool):
    """A model expert writes the code; the observation is what tirl's sandbox printed (42), not
    anything the expert wrote."""
    tok = tiny.tokenizer
    proto = TagProtocol([python_tool])
    eng = ScriptedEngine(tok, ["<think>Multiply.</think><python>print(6*7)</python>", "<answer>\\boxed{42}</answer>"])
    src = EngineExperts(eng, RolloutConfig(max_response_tokens=200))
    [tr] = asyncio.run(src.solve([TASK], proto, tok))
    _check_expert(tr, proto, tok, TASK)
    assert _origins(tr) == [Origin.EXPERT, Origin.TOOL, Origin.EXPERT]
    assert tr.steps[0].observation.output.strip() == "42"
    assert "42" in tok.decode(tr.segments[1].token_ids)
    assert correct(TASK, tr)


class FakeVLLM:
    """A /completions server answering turn k of a scripted expert (k = observations in the prompt)."""

    def __init__(self, tok, turns):
        self.tok, self.turns, self.prompts = tok, turns, []

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.prompts.append(body["prompt"])
        n = self.tok.decode(body["prompt"]).count("<result>")  # the system prompt shows the tag too
        base = self.tok.decode(self.prompts[0]).count("<result>")
        k = n - base
        text = self.turns[min(k, len(self.turns) - 1)]
        ids = self.tok(text, add_special_tokens=False)["input_ids"]
        stop = next((s for s in body.get("stop", []) if text.endswith(s)), None)
        choice = {
            "text": text,
            "logprobs": {"tokens": [f"token_id:{i}" for i in ids], "token_logprobs": [-0.1] * len(ids)},
            "finish_reason": "stop",
            "stop_reason": stop,
        }
        return httpx.Response(200, json={"choices": [choice], "usage": {"prompt_tokens": len(body["prompt"])}})


def test_endpoint_expert_through_the_agent_loop(tiny, echo_tool):
    """An OpenAI-compatible endpoint as the expert: its list-shaped agenerate is adapted to the
    agent loop, token ids go in and come back exactly, and the tool runs on tirl's side."""
    tok = tiny.tokenizer
    proto = TagProtocol([echo_tool])
    server = FakeVLLM(tok, ["<python>print(6*7)</python>", "<answer>\\boxed{42}</answer>"])
    eng = OpenAIEngine(
        OpenAIEngineConfig(base_url="http://fake.test/v1", model="m", api_key_env=None), tok, transport=httpx.MockTransport(server.handle)
    )
    try:
        [tr] = asyncio.run(EngineExperts(eng, RolloutConfig(max_response_tokens=200)).solve([TASK], proto, tok))
    finally:
        eng.close()
    _check_expert(tr, proto, tok, TASK)
    assert tr.stop_reason is StopReason.ANSWER and tr.answer == "42"
    assert tr.steps[0].observation.output.startswith("echo print(6*7)")  # tirl's tool answered
    assert server.prompts[1] == tr.prompt_token_ids + tr.segments[0].token_ids + tr.segments[1].token_ids


def test_file_expert(tiny, python_tool, tmp_path):
    tok = tiny.tokenizer
    proto = TagProtocol([python_tool])
    tasks = load_tasks("arith", n=2, seed=0, split="train", difficulty=1)
    trajs = asyncio.run(ReferenceExperts().solve(tasks, proto, tok))
    trajs[0].rewards = {"correct": 1.0}
    trajs[1].rewards = {"correct": 0.0}  # correct_only drops it
    for s in trajs[0].segments:  # a file of policy rollouts: its POLICY turns become EXPERT
        if s.origin is Origin.EXPERT:
            s.origin = Origin.POLICY
    path = tmp_path / "experts.jsonl"
    write_jsonl(path, trajs)
    src = FileExperts(path)
    got = asyncio.run(src.solve(tasks + [TASK], proto, tok))
    _check_expert(got[0], proto, tok, tasks[0])
    assert got[0].token_ids == trajs[0].token_ids and correct(tasks[0], got[0])
    assert got[1] is None and got[2] is None  # wrong, and not in the file
    assert asyncio.run(FileExperts(path, correct_only=False).solve(tasks[1:2], proto, tok))[0] is not None
    trajs[0].prompt_token_ids = trajs[0].prompt_token_ids[1:]
    write_jsonl(path, trajs[:1])
    with pytest.raises(ValueError, match="another tokenizer"):
        asyncio.run(FileExperts(path).solve(tasks[:1], proto, tok))
    with pytest.raises(FileNotFoundError):
        FileExperts(tmp_path / "missing.jsonl")


def test_retokenise_keeps_steps_and_eos(tiny):
    tok = tiny.tokenizer
    from tirl.types import Segment, Trajectory

    ids = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    tr = Trajectory(
        "t",
        0,
        [1, 2],
        segments=[
            Segment(Origin.EXPERT, ids("<python>x = 1</python>")),
            Segment(Origin.TOOL, ids("<result>1</result>")),
            Segment(Origin.EXPERT, ids("<answer>1</answer>") + [tok.eos_token_id]),
        ],
    )
    out = retokenise(tr, [7, 8, 9], tok, tok)
    assert out.prompt_token_ids == [7, 8, 9]
    assert [s.token_ids for s in out.segments] == [s.token_ids for s in tr.segments]
    assert out.segments[-1].token_ids[-1] == tok.eos_token_id


def test_expert_source_specs(tmp_path):
    rc = RolloutConfig()
    assert isinstance(make_expert_source("arith-reference", rollout=rc), ReferenceExperts)
    assert isinstance(make_expert_source("reference", rollout=rc), ReferenceExperts)
    with pytest.raises(ValueError, match="endpoint"):
        make_expert_source("http://127.0.0.1:8000/v1", rollout=rc)
    with pytest.raises(ValueError, match="no endpoints"):
        make_expert_source("openai:expert", rollout=rc)
    with pytest.raises(FileNotFoundError):
        make_expert_source(str(tmp_path / "none.jsonl"), rollout=rc)
