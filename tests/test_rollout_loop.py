"""The agent loop on a scripted engine: tool calls, answers, caps, malformed calls, infra
failures, and the two invariants (mask, token exactness)."""

import asyncio

from fake_engine import ScriptedEngine

from tirl.protocol import TagProtocol
from tirl.rollout import RolloutConfig, loss_mask, read_jsonl, rollout, write_jsonl
from tirl.rollout.drift import retokenization_drift
from tirl.types import Origin, StopReason, Task

TASK = Task(id="t1", prompt="What is 2+40?", answer="42")


def run(tiny, tool, turns, **cfg):
    proto = TagProtocol([tool])
    eng = ScriptedEngine(tiny.tokenizer, turns)
    groups = asyncio.run(rollout(eng, proto, [TASK], RolloutConfig(**{"group_size": 2, **cfg})))
    return groups[0], eng


def check_invariants(tr):
    # token exactness: the ids are prompt + segments, in order
    assert tr.token_ids == tr.prompt_token_ids + [t for s in tr.segments for t in s.token_ids]
    mask = loss_mask(tr)
    assert len(mask) == len(tr.token_ids)
    pos = len(tr.prompt_token_ids)
    assert not any(mask[:pos])
    for seg in tr.segments:
        m = mask[pos : pos + len(seg)]
        if seg.origin is not Origin.POLICY:
            assert not any(m), "a non-policy token is trainable"
        pos += len(seg)


def test_call_then_answer(tiny, echo_tool):
    group, eng = run(tiny, echo_tool, ["<python>print(2+40)</python>", "<answer>\\boxed{42}</answer>"])
    assert len(group) == 2
    for tr in group:
        assert [s.origin for s in tr.segments] == [Origin.POLICY, Origin.TOOL, Origin.POLICY]
        assert tr.stop_reason is StopReason.ANSWER and tr.answer == "42" and tr.n_tool_calls == 1
        assert tr.steps[0].observation.output.startswith("echo print(2+40)")
        assert "<result>" in tiny.tokenizer.decode(tr.segments[1].token_ids)
        check_invariants(tr)
    # every request after the first turn continued the exact ids of the trajectory so far
    assert any(len(r.prefix_ids) > len(group[0].prompt_token_ids) for r in eng.requests)
    assert len(echo_tool.closed) == 2  # sessions closed, one per trajectory
    assert len(echo_tool.calls) == 2  # and calls were kept apart per trajectory


def test_tool_cap_stops(tiny, echo_tool):
    group, _ = run(tiny, echo_tool, ["<python>x = 1</python>"], max_tool_calls=2)
    for tr in group:
        assert tr.stop_reason is StopReason.TOOL_CAP and tr.n_tool_calls == 2
        check_invariants(tr)


def test_malformed_call_is_an_observation(tiny, echo_tool):
    group, _ = run(tiny, echo_tool, ["<python>   </python>", "<answer>\\boxed{1}</answer>"])
    tr = group[0]
    assert tr.steps[0].call.error and not tr.steps[0].observation.ok
    assert "Error: empty" in tiny.tokenizer.decode(tr.segments[1].token_ids)
    assert echo_tool.calls == {}  # the tool never ran
    check_invariants(tr)


def test_length_and_eos(tiny, echo_tool):
    group, _ = run(tiny, echo_tool, ["word " * 50], max_response_tokens=10)
    assert all(t.stop_reason is StopReason.LENGTH and len(t.completion_ids) == 10 for t in group)
    group, _ = run(tiny, echo_tool, ["it is \\boxed{5}<|im_end|>"])
    assert all(t.stop_reason is StopReason.EOS and t.answer == "5" for t in group)


def test_infra_failure_is_dropped_not_scored(tiny, echo_tool):
    async def broken(call, session):
        raise OSError("worker died")

    echo_tool.run = broken
    group, _ = run(tiny, echo_tool, ["<python>1</python>", "<answer>\\boxed{1}</answer>"])
    for tr in group:
        assert tr.stop_reason is StopReason.ERROR and tr.steps[0].observation.infra_error
        assert sum(loss_mask(tr)) == 0


def test_mask_truncated_option(tiny, echo_tool):
    group, _ = run(tiny, echo_tool, ["word " * 50], max_response_tokens=10)
    assert sum(loss_mask(group[0])) == 10 and sum(loss_mask(group[0], mask_truncated=True)) == 0


def test_jsonl_roundtrip_keeps_exact_ids(tiny, echo_tool, tmp_path):
    group, _ = run(tiny, echo_tool, ["<python>print(2+40)</python>", "<answer>\\boxed{42}</answer>"])
    write_jsonl(tmp_path / "t.jsonl", group)
    back = list(read_jsonl(tmp_path / "t.jsonl"))
    for a, b in zip(group, back):
        assert a.token_ids == b.token_ids and loss_mask(a) == loss_mask(b)
        assert [s.origin for s in a.segments] == [s.origin for s in b.segments]
        assert b.steps[0].call.arguments == a.steps[0].call.arguments and b.steps[0].observation.output == a.steps[0].observation.output


def test_retokenization_drift_is_reported_and_not_used(tiny, echo_tool):
    """Sampled ids that are not the tokenizer's canonical encoding: re-rendering the text would
    change them. The trajectory (what training uses) keeps the sampled ids; the drift check says so."""
    proto = TagProtocol([echo_tool])
    eng = ScriptedEngine(tiny.tokenizer, ["<python>print(42)</python>", "<answer>\\boxed{42}</answer>"], char_level=True)
    tr = asyncio.run(rollout(eng, proto, [TASK], RolloutConfig(group_size=1)))[0][0]
    check_invariants(tr)
    report = retokenization_drift(tr, tiny.tokenizer)
    assert report.drifted and report.n_retokenized < report.n_tokens
    # the policy segment holds exactly the engine's (character-level) ids
    assert tr.segments[0].token_ids == eng._ids("<python>print(42)</python>")
    # canonical ids round-trip without drift, so the check is not trivially true
    tr2, _ = run(tiny, echo_tool, ["<answer>\\boxed{42}</answer>"])
    assert not retokenization_drift(tr2[0], tiny.tokenizer).drifted


def test_hermes_buffer_matches_full_template_render(tiny, echo_tool):
    """The token buffer of a Hermes trajectory decodes to exactly what the chat template renders
    for the same conversation (no separator lost at the assistant/tool boundary); token-level
    drift of a re-render is measured, not used."""
    import json

    from tirl.protocol import HermesProtocol

    proto = HermesProtocol([echo_tool], tiny.tokenizer)
    call = "<tool_call>\n" + json.dumps({"name": "python", "arguments": {"code": "print(42)"}}) + "\n</tool_call>"
    final = "It is \\boxed{42}.<|im_end|>"
    eng = ScriptedEngine(tiny.tokenizer, [call, final], marker="<|im_start|>tool")
    tr = asyncio.run(rollout(eng, proto, [TASK], RolloutConfig(group_size=1)))[0][0]
    check_invariants(tr)
    assert tr.stop_reason is StopReason.ANSWER and tr.answer == "42"
    obs = tr.steps[0].observation.output
    msgs = proto.messages(TASK) + [
        {"role": "assistant", "content": call},
        {"role": "tool", "content": obs},
        {"role": "assistant", "content": final.removesuffix("<|im_end|>")},
    ]
    rendered = tiny.tokenizer.apply_chat_template(msgs, tokenize=False)
    assert tiny.tokenizer.decode(tr.token_ids) + "\n" == rendered  # the template adds a newline after the last <|im_end|>


def test_void_turn_filter(tiny, echo_tool):
    group, _ = run(tiny, echo_tool, ["I am not sure.<|im_end|>"], void_turn_filter=True)
    assert all(t.stop_reason is StopReason.VOID_TURN and sum(loss_mask(t)) == 0 for t in group)
    group, _ = run(tiny, echo_tool, ["I am not sure.<|im_end|>"])
    assert all(t.stop_reason is StopReason.EOS and sum(loss_mask(t)) > 0 for t in group)


def test_sft_mask_trains_expert_but_never_tool_tokens(tiny, echo_tool):
    from tirl.rollout.masks import SFT_ORIGINS
    from tirl.types import Segment, Trajectory

    tr = Trajectory(
        "t", 0, [1, 2], [Segment(Origin.EXPERT, [3, 4]), Segment(Origin.TOOL, [5]), Segment(Origin.EXPERT, [6])], stop_reason=StopReason.ANSWER
    )
    assert loss_mask(tr) == [0, 0, 0, 0, 0, 0]
    assert loss_mask(tr, origins=SFT_ORIGINS) == [0, 0, 1, 1, 0, 1]
    assert loss_mask(tr, origins=frozenset(Origin)) == [0, 0, 1, 1, 0, 1]  # TOOL/PROMPT never, whatever is asked


def test_one_trajectorys_failure_is_its_own(tiny, echo_tool, tmp_path):
    """A parser (or any per-trajectory step) that raises stops that trajectory with stop reason
    ERROR and the failure named; the other trajectories of the batch finish normally."""

    class Flaky(TagProtocol):
        calls = 0

        def parse_turn(self, turn_text, ended_by_eos):
            Flaky.calls += 1
            if Flaky.calls == 2:
                raise RecursionError("maximum recursion depth exceeded")
            return super().parse_turn(turn_text, ended_by_eos)

    eng = ScriptedEngine(tiny.tokenizer, ["<python>print(2+40)</python>", "<answer>\\boxed{42}</answer>"])
    groups = asyncio.run(rollout(eng, Flaky([echo_tool]), [TASK], RolloutConfig(group_size=3)))
    stops = sorted(t.stop_reason.value for t in groups[0])
    assert stops == ["answer", "answer", "error"]
    failed = next(t for t in groups[0] if t.stop_reason is StopReason.ERROR)
    assert failed.error == "reading the model's turn: RecursionError: maximum recursion depth exceeded"
    write_jsonl(tmp_path / "t.jsonl", [failed])  # the reason is saved with the trajectory
    assert next(read_jsonl(tmp_path / "t.jsonl")).error == failed.error
