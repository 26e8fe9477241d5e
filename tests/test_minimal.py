"""The readable reference loop is a checked twin of the trainer: its tool loop builds the
trajectories the agent loop builds, its advantages and update equal the flat strategy's credit
and ``policy_update`` on the same batch, and it runs end to end on tiny-random (CI runs it)."""

import asyncio
import copy
import math
from types import SimpleNamespace

import pytest
import torch
from fake_engine import ScriptedEngine

from tirl.config import AlgoConfig, OptimConfig
from tirl.protocol import TagProtocol
from tirl.rollout import RolloutConfig, rollout
from tirl.rollout.tree import Branch, build_tree
from tirl.tools import PythonSandbox, SandboxConfig
from tirl.train import minimal
from tirl.train.strategies import FlatStrategy
from tirl.train.update import policy_update
from tirl.types import Observation, Origin, Segment, Step, StopReason, Task, ToolCall, Trajectory

TASK = Task(id="t1", prompt="What is 2+40?", answer="42")


@pytest.fixture(scope="module")
def sandbox():
    with PythonSandbox(SandboxConfig(workers=1)) as sb:
        yield sb


def same_trajectory(a: Trajectory, b: Trajectory) -> None:
    assert a.token_ids == b.token_ids
    assert [(s.origin, s.token_ids, s.logprobs) for s in a.segments] == [(s.origin, s.token_ids, s.logprobs) for s in b.segments]
    assert [(s.action_segment, s.tool_segment, s.call) for s in a.steps] == [(s.action_segment, s.tool_segment, s.call) for s in b.steps]
    obs = lambda t: [(s.observation.ok, s.observation.output, s.observation.infra_error) if s.observation else None for s in t.steps]
    assert obs(a) == obs(b)
    assert (a.stop_reason, a.answer, a.text) == (b.stop_reason, b.answer, b.text)


SCRIPTS = {  # turns of the scripted engine, tool-call cap, token budget -> the stop reason both loops must reach
    "answer": (["<python>print(2+40)</python>", "<python>print(x)</python>", "<answer>\\boxed{42}</answer>"], 4, 128, StopReason.ANSWER),
    "tool_cap": (["<python>y = 1</python>"], 2, 128, StopReason.TOOL_CAP),
    "malformed_then_budget": (["<python>   </python>", "word " * 60], 4, 40, StopReason.LENGTH),
    "eos": (["it is \\boxed{5}<|im_end|>"], 4, 128, StopReason.EOS),
    "observation_fills_budget": (["<python>print(1)</python>", "<answer>\\boxed{1}</answer>"], 4, None, StopReason.LENGTH),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_tool_loop_builds_the_agent_loops_trajectories(tiny, sandbox, name):
    turns, cap, budget, stop = SCRIPTS[name]
    proto = TagProtocol([sandbox])
    if budget is None:  # exactly the first call and its observation: the budget is full after the tool
        probe = asyncio.run(rollout(ScriptedEngine(tiny.tokenizer, turns), proto, [TASK], RolloutConfig(group_size=1)))[0][0]
        budget = len(probe.segments[0]) + len(probe.segments[1])
    args = minimal.Args(group=2, max_tokens=budget, max_tool_calls=cap)
    mine = minimal.sample(ScriptedEngine(tiny.tokenizer, turns), proto, sandbox, [TASK], args)[0]
    cfg = RolloutConfig(group_size=2, max_response_tokens=budget, max_turn_tokens=budget, max_tool_calls=cap)
    theirs = asyncio.run(rollout(ScriptedEngine(tiny.tokenizer, turns), proto, [TASK], cfg))[0]
    for a, b in zip(mine, theirs, strict=True):
        same_trajectory(a, b)
        assert a.stop_reason is stop
    if name == "answer":  # the sandbox really ran: output, then the model's NameError
        assert "42" in mine[0].steps[0].observation.output and "NameError" in mine[0].steps[1].observation.output


def test_infra_failure_stops_the_trajectory_like_the_agent_loop(tiny):
    dead = PythonSandbox(SandboxConfig(workers=1))
    dead.close()  # every call is now an infrastructure failure
    turns = ["<python>print(1)</python>", "<answer>\\boxed{1}</answer>"]
    proto = TagProtocol([dead])
    mine = minimal.sample(ScriptedEngine(tiny.tokenizer, turns), proto, dead, [TASK], minimal.Args(group=1))[0][0]
    theirs = asyncio.run(
        rollout(ScriptedEngine(tiny.tokenizer, turns), proto, [TASK], RolloutConfig(group_size=1, max_response_tokens=128, max_turn_tokens=128))
    )[0][0]
    same_trajectory(mine, theirs)
    assert mine.stop_reason is StopReason.ERROR


def fixed_groups(tok) -> list[list[Trajectory]]:
    """Three tasks' groups of hand-made trajectories: tool segments between policy segments,
    different lengths, rewards; task b has an infrastructure failure (dropped before the group
    statistics), task c is left with one scorable sample (no baseline: the group is dropped)."""
    gen = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(3, tok.vocab_size, (n,), generator=gen).tolist()

    def traj(task, prompt, sample, lens, reward, stop=StopReason.ANSWER):
        segs, steps = [], []
        for i, n in enumerate(lens):
            segs.append(Segment(Origin.TOOL if i % 2 else Origin.POLICY, ids(n), None if i % 2 else [-1.0] * n))
            if i % 2:
                steps[-1] = Step(i - 1, ToolCall("python", {"code": "1"}), Observation(True, "1"), i)
            else:
                steps.append(Step(i))
        return Trajectory(task, sample, prompt, segs, steps, stop_reason=stop, reward=reward)

    pa, pb, pc = ids(12), ids(9), ids(7)
    return [
        [traj("a", pa, 0, [5, 6, 4], 1.0), traj("a", pa, 1, [8], 0.0), traj("a", pa, 2, [3, 7, 9, 4, 2], -1.0, StopReason.LENGTH)],
        [
            traj("b", pb, 0, [6, 5, 3], 1.0),
            traj("b", pb, 1, [4, 4, 6], 0.0, StopReason.ERROR),
            traj("b", pb, 2, [10], 0.0),
            traj("b", pb, 3, [2, 3, 5], 1.0),
        ],
        [traj("c", pc, 0, [4], 1.0), traj("c", pc, 1, [3, 2, 2], 0.0, StopReason.ERROR)],
    ]


def test_one_minimal_step_equals_policy_update(tiny):
    """Same trajectories in: minimal's advantages + ``policy_step`` against the trainer's flat
    credit (trees without the failure, groups of >= 2 as ``RLTrainer.sample_batch`` keeps them)
    + ``policy_update``, from identical model copies. SGD with lr 1 makes the parameter update
    the clipped gradient itself (AdamW's first step would hide its scale)."""
    tok = tiny.tokenizer
    groups = fixed_groups(tok)
    trajs, adv_B = minimal.group_advantages(groups)
    trees = [build_tree(g[0].task_id, [Branch(t) for t in g], strategy="flat") for g in groups]
    credit = FlatStrategy(SimpleNamespace(algo=AlgoConfig())).credit([t for t in trees if len(t.trajectories()) >= 2])
    assert [t.sample for t in trajs] == [r.sample for r in credit.rows] == [0, 1, 2, 0, 2, 3]
    assert torch.allclose(adv_B, torch.tensor(credit.values), atol=1e-6)

    start = copy.deepcopy(tiny.model)
    m_min, m_ref = copy.deepcopy(start), copy.deepcopy(start)
    opt_min, opt_ref = torch.optim.SGD(m_min.parameters(), lr=1.0), torch.optim.SGD(m_ref.parameters(), lr=1.0)
    st_min = minimal.policy_step(m_min, opt_min, trajs, adv_B, tok.pad_token_id, 0.2, bf16=False)
    policy = SimpleNamespace(model=m_ref, trainable_parameters=lambda: list(m_ref.parameters()))
    st_ref = policy_update(policy, opt_ref, credit.rows, AlgoConfig(), OptimConfig(bf16=False), tok.pad_token_id, norm_constant=128.0)

    assert st_min["tokens"] == st_ref.n_tokens
    assert st_min["loss"] == pytest.approx(st_ref.loss, rel=1e-5, abs=1e-7)
    assert st_min["grad_norm"] == pytest.approx(st_ref.grad_norm, rel=1e-5)
    assert st_min["entropy"] == pytest.approx(st_ref.entropy, rel=1e-5)
    moved = 0
    for (name, p0), p_min, p_ref in zip(start.named_parameters(), m_min.parameters(), m_ref.parameters()):
        d_min, d_ref = p_min.detach() - p0.detach(), p_ref.detach() - p0.detach()
        assert torch.allclose(d_min, d_ref, rtol=1e-4, atol=1e-7), f"{name}: max diff {(d_min - d_ref).abs().max():.3g}"
        moved += int(d_ref.abs().max() > 0)
    assert moved > 0  # the step did move the weights


@pytest.mark.slow
def test_minimal_loop_runs(tmp_path):
    rows = minimal.main(minimal.Args(model="tiny-random", steps=2, tasks=2, group=2, max_tokens=16, out=str(tmp_path)))
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and r["reward"] <= 1.0 for r in rows)
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2
