"""End to end: the reference solver's trajectories through the real sandbox score 1 under both
protocols, and the real SmolLM2 rolls out a few arith tasks with the Python tool."""

import asyncio
import json

import pytest
from test_rollout_loop import check_invariants

from tirl.protocol import HermesProtocol, TagProtocol
from tirl.rewards.compose import apply_rewards
from tirl.rewards.presets import default_rewards
from tirl.rollout import RolloutConfig, rollout, script_trajectory, summarize, write_jsonl
from tirl.tasks import load_tasks
from tirl.tasks.arith import reference_solution
from tirl.tools import PythonSandbox, SandboxConfig
from tirl.types import Origin, StopReason


@pytest.fixture(scope="module")
def sandbox():
    sb = PythonSandbox(SandboxConfig(workers=2))
    yield sb
    asyncio.run(sb.aclose())


@pytest.mark.parametrize("protocol", ["tag", "hermes"])
def test_reference_solutions_score_one(tiny, sandbox, protocol):
    proto = TagProtocol([sandbox]) if protocol == "tag" else HermesProtocol([sandbox], tiny.tokenizer)
    tasks = load_tasks("arith", n=10, seed=1, split="train")

    async def go():
        return [await script_trajectory(t, reference_solution(t), proto, tiny.tokenizer) for t in tasks]

    trajs = asyncio.run(go())
    apply_rewards([(t, [tr]) for t, tr in zip(tasks, trajs)], default_rewards(proto))
    for task, tr in zip(tasks, trajs):
        assert tr.stop_reason is StopReason.ANSWER
        assert all(s.origin in (Origin.EXPERT, Origin.TOOL) for s in tr.segments)
        assert all(s.observation.ok for s in tr.steps if s.call), [s.observation for s in tr.steps]
        # the executed code printed the gold answer, and the whole trajectory scores 1
        assert task.answer in tr.steps[0].observation.output or any(task.answer in (s.observation.output or "") for s in tr.steps if s.call)
        assert tr.rewards == {"outcome": 1.0, "correct": 1.0, "format_ok": 1.0}, (tr.text, tr.rewards)
        check_invariants(tr)


@pytest.mark.slow
def test_smollm2_rollout_end_to_end(sandbox, tmp_path):
    from tirl.engine import HFEngine
    from tirl.models import load_model

    lm = load_model("smollm2-135m-instruct")
    proto = TagProtocol([sandbox])
    tasks = load_tasks("arith", n=3, seed=0, split="test", difficulty=1)
    cfg = RolloutConfig(group_size=2, max_response_tokens=96, max_turn_tokens=96)
    groups = asyncio.run(rollout(HFEngine(lm.model, lm.tokenizer), proto, tasks, cfg))
    apply_rewards(list(zip(tasks, groups)), default_rewards(proto))
    trajs = [t for g in groups for t in g]
    assert len(trajs) == 6
    for tr in trajs:
        check_invariants(tr)
        assert tr.stop_reason is not None and tr.n_policy_tokens > 0
        assert set(tr.rewards) == {"outcome", "correct", "format_ok"}
    write_jsonl(tmp_path / "t.jsonl", trajs)
    rows = [json.loads(line) for line in open(tmp_path / "t.jsonl")]
    assert {"task_id", "sample", "prompt_token_ids", "segments", "text", "tool_calls", "answer", "gold", "reward", "rewards", "stop_reason"} <= set(
        rows[0]
    )
    s = summarize(groups, wall_s=1.0)
    assert s.n_trajectories == 6 and s.accuracy == pytest.approx(sum(t.rewards["correct"] for t in trajs) / 6)
