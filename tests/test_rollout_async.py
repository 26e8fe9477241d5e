"""The agent loop's asynchronous path: each trajectory runs on its own (a tool wait never holds
back another trajectory's turns), it builds the same trajectories as the round-based path, and
per-request seeds make sampled rollouts independent of batching and scheduling."""

import asyncio
import time

from fake_engine import ScriptedEngine

from tirl.engine import HFEngine, HFEngineConfig
from tirl.engine.base import Engine
from tirl.protocol import TagProtocol
from tirl.rollout import RolloutConfig, rollout
from tirl.types import Observation, Task

TASKS = [Task(id="a", prompt="What is 2+40?", answer="42"), Task(id="b", prompt="What is 6*7?", answer="42")]


class AsyncScripted(ScriptedEngine):
    """The scripted engine behind the asynchronous interface, with per-task scripts."""

    async_native = True

    def __init__(self, tokenizer, scripts: dict[str, list[str]], prompts: dict[str, list[int]]):
        super().__init__(tokenizer, [])
        self.scripts, self.task_prompts = scripts, prompts
        self.events: list[tuple[str, str, float]] = []

    def _task_of(self, prefix):
        return next(t for t, p in self.task_prompts.items() if prefix[: len(p)] == p)

    async def agenerate(self, request):
        task = self._task_of(request.prefix_ids)
        await asyncio.sleep(0.01)  # decoding takes time
        self.events.append(("turn", task, time.perf_counter()))
        self.turns = self.scripts[task]
        return self.generate([request])[0]


class SlowTool:
    name, description, main_arg = "python", "sleeps on 'slow'", "code"
    parameters = {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}

    def __init__(self, events):
        self.events = events

    async def run(self, call, session):
        if "slow" in call.arguments["code"]:
            await asyncio.sleep(0.5)
        self.events.append(("tool_done", call.arguments["code"].strip(), time.perf_counter()))
        return Observation(ok=True, output="1")

    async def close_session(self, session):
        pass


def test_a_tool_wait_does_not_hold_back_other_trajectories(tiny):
    events: list = []
    proto = TagProtocol([SlowTool(events)])
    prompts = {t.id: proto.prompt_ids(tiny.tokenizer, t) for t in TASKS}
    scripts = {
        "a": ["<python>slow</python>", "<answer>\\boxed{42}</answer>"],
        "b": ["<python>fast1</python>", "<python>fast2</python>", "<python>fast3</python>", "<answer>\\boxed{42}</answer>"],
    }
    eng = AsyncScripted(tiny.tokenizer, scripts, prompts)
    eng.events = events
    groups = asyncio.run(rollout(eng, proto, TASKS, RolloutConfig(group_size=1)))
    assert [g[0].n_tool_calls for g in groups] == [1, 3]
    slow_done = next(t for kind, what, t in events if kind == "tool_done" and what == "slow")
    b_turns = [t for kind, task, t in events if kind == "turn" and task == "b"]
    assert len(b_turns) == 4 and b_turns[-1] < slow_done  # b finished while a waited on its tool


def test_async_path_builds_the_same_trajectories_as_rounds(tiny, echo_tool):
    proto = TagProtocol([echo_tool])
    prompts = {t.id: proto.prompt_ids(tiny.tokenizer, t) for t in TASKS}
    turns = ["<python>print(2+40)</python>", "<python>boom</python>", "<answer>\\boxed{42}</answer>"]
    cfg = RolloutConfig(group_size=2)
    sync = asyncio.run(rollout(ScriptedEngine(tiny.tokenizer, turns), proto, TASKS, cfg))
    asyn = asyncio.run(rollout(AsyncScripted(tiny.tokenizer, {"a": turns, "b": turns}, prompts), proto, TASKS, cfg))
    for ga, gb in zip(sync, asyn):
        for x, y in zip(ga, gb):
            assert x.token_ids == y.token_ids and x.stop_reason == y.stop_reason and x.answer == y.answer
            assert [s.observation.output.split("#")[0] if s.observation else None for s in x.steps] == [
                s.observation.output.split("#")[0] if s.observation else None for s in y.steps
            ]


class SyncOnly(Engine):
    """An engine with only the synchronous interface of its own (the round-based path)."""

    def __init__(self, engine):
        self.engine, self.tokenizer = engine, engine.tokenizer

    def generate(self, requests):
        return self.engine.generate(requests)

    def draw_seed(self):
        return self.engine.draw_seed()


def test_seeded_samples_do_not_depend_on_scheduling(tiny, echo_tool):
    proto = TagProtocol([echo_tool])
    cfg = RolloutConfig(group_size=3, max_response_tokens=24, max_turn_tokens=24)
    tasks = TASKS * 2
    a = asyncio.run(rollout(HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig(seed=5)), proto, tasks, cfg))
    b = asyncio.run(rollout(SyncOnly(HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig(seed=5, max_batch=4))), proto, tasks, cfg))
    ids = lambda groups: [t.token_ids for g in groups for t in g]  # noqa: E731
    assert ids(a) == ids(b)
    assert len({tuple(x) for x in ids(a)}) > 1  # and the samples of a group differ
