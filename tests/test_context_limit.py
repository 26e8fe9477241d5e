"""The model's context window: a trajectory whose conversation fills it stops with stop reason
LENGTH (the engine is never asked for what cannot fit); tasks whose prompt does not fit are set
aside up front by id; a response budget that leaves no room for a prompt is refused."""

import asyncio

import pytest
from fake_engine import ScriptedEngine

from tirl.protocol import TagProtocol
from tirl.rollout import RolloutConfig, rollout
from tirl.rollout.fit import NoTaskFits, fit_tasks
from tirl.types import StopReason, Task

SHORT = Task(id="short", prompt="What is 2+40?", answer="42")
LONG = Task(id="long", prompt="word " * 400, answer="1")


class SmallContext(ScriptedEngine):
    def __init__(self, tokenizer, turns, max_context):
        super().__init__(tokenizer, turns)
        self.max_context = max_context

    def generate(self, requests):
        for r in requests:
            assert len(r.prefix_ids) < self.max_context, "the loop asked for a prefix that fills the context"
        return super().generate(requests)


def test_a_tool_result_that_fills_the_context_stops_the_trajectory(tiny, echo_tool):
    proto = TagProtocol([echo_tool])
    n_prompt = len(proto.prompt_ids(tiny.tokenizer, SHORT))
    # the echo of this call (its code, repeated in the observation) pushes the conversation past the context
    call = "<python>" + "x = 1; " * 40 + "</python>"
    eng = SmallContext(tiny.tokenizer, [call, "<answer>\\boxed{42}</answer>"], max_context=n_prompt + 120)
    (group,) = asyncio.run(rollout(eng, proto, [SHORT], RolloutConfig(group_size=2, max_response_tokens=1000)))
    for tr in group:
        assert tr.stop_reason is StopReason.LENGTH and tr.metrics["context_full"] == 1.0
        assert len(tr.token_ids) >= eng.max_context and tr.n_tool_calls == 1
    assert len(eng.requests) == 2  # one turn each; the second would not fit


def test_a_prompt_over_the_context_stops_at_once(tiny, echo_tool):
    proto = TagProtocol([echo_tool])
    eng = SmallContext(tiny.tokenizer, ["<answer>\\boxed{1}</answer>"], max_context=64)
    (group,) = asyncio.run(rollout(eng, proto, [LONG], RolloutConfig(group_size=2)))
    assert all(t.stop_reason is StopReason.LENGTH and t.completion_ids == [] for t in group)
    assert eng.requests == []


def test_fit_tasks_sets_over_long_prompts_aside_by_id(tiny, echo_tool):
    proto = TagProtocol([echo_tool])
    n_long, ctx = len(proto.prompt_ids(tiny.tokenizer, LONG)), len(proto.prompt_ids(tiny.tokenizer, SHORT)) + 10
    fit = fit_tasks([SHORT, LONG, SHORT], proto, tiny.tokenizer, max_context=ctx)
    assert [t.id for t in fit.kept] == ["short", "short"] and fit.skipped == {"long": n_long}
    assert fit.note() == f"skipped 1 of 3 tasks whose prompt does not fit the model's context of {ctx} tokens: long ({n_long} tokens)"
    assert fit_tasks([SHORT, LONG], proto, tiny.tokenizer, max_context=None).kept == [SHORT, LONG]  # unknown context: all kept
    assert fit_tasks([SHORT], proto, tiny.tokenizer, max_context=ctx).note() is None
    with pytest.raises(NoTaskFits, match="none is left"):
        fit_tasks([LONG], proto, tiny.tokenizer, max_context=ctx).require()
