"""Protocol parsing: tool calls, answers, malformed input as observations, and fuzzing."""

import json

from conftest import EchoTool
from hypothesis import given, settings
from hypothesis import strategies as st

from tirl.protocol import HermesProtocol, TagProtocol
from tirl.tools import Calculator
from tirl.types import Script, ScriptStep


def tag():
    return TagProtocol([EchoTool()])


def test_tag_tool_call_and_fence():
    p = tag()
    t = p.parse_turn("<think>compute</think>\n<python>\n```python\nprint(2+2)\n```\n</python>", False)
    assert t.call is not None and t.call.error is None and t.call.arguments == {"code": "print(2+2)"}
    assert not t.final
    # the closing tag may share its sampled token with a newline
    t = p.parse_turn("<python>x=1</python>\n", False)
    assert t.call.arguments == {"code": "x=1"}


def test_tag_malformed_calls_become_errors():
    p = tag()
    t = p.parse_turn("just text </python>", False)
    assert t.call is not None and "without an opening" in t.call.error
    t = p.parse_turn("<python>   </python>", False)
    assert "empty" in t.call.error
    obs = p.error_observation(t.call)
    assert not obs.ok and obs.output.startswith("Error:")


def test_tag_answer_is_last_boxed_in_answer():
    p = tag()
    t = p.parse_turn("maybe \\boxed{1} <answer>so \\boxed{2} or \\boxed{3}</answer>", False)
    assert t.final and t.answer == "3"
    t = p.parse_turn("The result is \\boxed{42}.<|im_end|>", True)
    assert t.final and t.answer == "42"
    t = p.parse_turn("unfinished thought", False)
    assert t.call is None and not t.final


def test_tag_format_rules():
    p = tag()
    good = "<think>x</think>\n<python>print(1)</python>\n<result>\n1\n</result>\n<answer>\\boxed{1}</answer>"
    assert p.format_error(good) is None
    assert p.format_error(good + "<|im_end|>") is None
    assert "exactly one" in p.format_error("no answer at all")
    assert "boxed" in p.format_error("<answer>1</answer>")
    assert "result" in p.format_error("<python>1</python><result>\n1\n</result><result>x</result><answer>\\boxed{1}</answer>")
    assert "unbalanced" in p.format_error("<python>1<answer>\\boxed{1}</answer>")


def test_script_rendering_parses_back():
    p = tag()
    step = ScriptStep("add", "a = 1\nprint(a + 1)")
    call = p.script_call(step)
    assert call.arguments == {"code": "a = 1\nprint(a + 1)"}
    final = p.render_final(Script([step], "done", "2"))
    assert p.parse_turn(final, False).answer == "2"


def test_hermes_calls_and_errors(tiny):
    p = HermesProtocol([EchoTool()], tiny.tokenizer)
    body = json.dumps({"name": "python", "arguments": {"code": "print(1)"}})
    t = p.parse_turn(f"thinking\n<tool_call>\n{body}\n</tool_call>", False)
    assert t.call.error is None and t.call.arguments == {"code": "print(1)"}
    assert "not valid JSON" in p.parse_turn("<tool_call>{oops</tool_call>", False).call.error
    assert "unknown tool" in p.parse_turn('<tool_call>{"name": "web", "arguments": {}}</tool_call>', False).call.error
    assert "missing argument" in p.parse_turn('<tool_call>{"name": "python", "arguments": {}}</tool_call>', False).call.error
    assert p.parse_turn("so \\boxed{7}", True).answer == "7"


def test_hermes_observation_is_a_template_tool_turn(tiny):
    p = HermesProtocol([EchoTool()], tiny.tokenizer)
    from tirl.types import Observation, ToolCall

    text = p.observation_text(ToolCall("python", {"code": "1"}), Observation(True, "RESULT"))
    # SmolLM2's template: close the assistant turn, a tool turn, open the next assistant turn
    assert text == "<|im_end|>\n<|im_start|>tool\nRESULT<|im_end|>\n<|im_start|>assistant\n"


_tags = st.sampled_from(
    [
        "<python>",
        "</python>",
        "<answer>",
        "</answer>",
        "<think>",
        "</think>",
        "\\boxed{",
        "}",
        "{",
        "<tool_call>",
        "</tool_call>",
        "```",
        "\n",
        '"name"',
        "<result>",
    ]
)
_text = st.lists(st.one_of(_tags, st.text(max_size=12)), max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(_text, st.booleans())
def test_tag_parser_never_raises(text, eos):
    p = tag()
    t = p.parse_turn(text, eos)
    if t.call is not None:
        assert t.call.error is not None or t.call.arguments.get("code")
    p.format_error(text)


@settings(max_examples=300, deadline=None)
@given(_text, st.booleans())
def test_hermes_parser_never_raises(tiny, text, eos):
    p = HermesProtocol([EchoTool()], tiny.tokenizer)
    t = p.parse_turn(text, eos)
    if t.call is not None and t.call.error is None:
        assert t.call.name == "python" and "code" in t.call.arguments
    p.format_error(text)


def test_tag_system_prompt_names_tools_only_when_there_are_some():
    bare = TagProtocol([]).system_prompt()
    assert "tool" not in bare.lower() and "<answer>" in bare and "<python>" not in bare
    with_calc = TagProtocol([Calculator()]).system_prompt()
    assert "Available tools:" in with_calc and "<calculator>" in with_calc
