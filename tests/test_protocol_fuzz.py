"""Both protocol parsers on generated model replies: they never raise. Every reply reads as a
turn (a tool call, well-formed or with its error, a final answer, or nothing yet) and every
finished completion as conforming or a format error. The replies mix each protocol's tags,
JSON fragments, integers beyond Python's conversion limit, deep nesting, double-encoded
arguments and special tokens. ``make test`` runs a few hundred; the slow set 10,000 per parser."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tirl.protocol import HermesProtocol, TagProtocol
from tirl.protocol.base import ParsedTurn
from tirl.tools import make_tool
from tirl.types import ToolCall

PIECES = [
    "<python>",
    "</python>",
    "<answer>",
    "</answer>",
    "<think>",
    "</think>",
    "<result>",
    "</result>",
    "<tool_call>",
    "</tool_call>",
    "\\boxed{",
    "}",
    "{",
    '"name": "python"',
    '"arguments": ',
    '"code": ',
    '"',
    ",",
    ":",
    "[",
    "]",
    "<|im_end|>",
    "<|endoftext|>",
    "<|",
    "|>",
    "```python\n",
    "```",
    "\n",
    " ",
    "print(1)",
    "42",
    "\\",
    "9" * 5000,
    "[" * 3000,
    '{"a":' * 2000,
    '"' + '\\"' * 50,
    "\ud800",
    "\x00",
]


def hermes_call() -> st.SearchStrategy[str]:
    """Tool calls that are nearly right: real keys, odd values, arguments encoded 0-3 times."""
    value = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    )
    args = st.dictionaries(st.sampled_from(["code", "query", "x"]), value, max_size=3)

    def render(name, a, times, huge):
        body = a
        for _ in range(times):
            body = json.dumps(body)
        obj = {"name": name, "arguments": body}
        text = json.dumps(obj)
        if huge:
            text = text.replace("{", '{"n": ' + "7" * 4400 + ", ", 1)
        return f"<tool_call>\n{text}\n</tool_call>"

    return st.builds(render, st.sampled_from(["python", "nope", ""]), args, st.integers(0, 3), st.booleans())


REPLY = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
    hermes_call(),
    st.text(max_size=200),
    st.tuples(st.lists(st.sampled_from(PIECES), max_size=4), hermes_call()).map(lambda t: "".join(t[0]) + t[1]),
)


@pytest.fixture(scope="module")
def protocols(tiny):
    tools = [make_tool("python"), make_tool("calculator")]
    yield [TagProtocol(tools), HermesProtocol(tools, tiny.tokenizer)]
    for t in tools:
        t.close() if hasattr(t, "close") else None


def _check(proto, reply: str) -> None:
    for eos in (False, True):
        turn = proto.parse_turn(reply, ended_by_eos=eos)
        assert isinstance(turn, ParsedTurn)
        if turn.call is not None:
            assert isinstance(turn.call, ToolCall)
            assert turn.call.error is not None or (turn.call.name in proto.tools and isinstance(turn.call.arguments, dict))
        assert turn.answer is None or isinstance(turn.answer, str)
    err = proto.format_error(reply)
    assert err is None or (isinstance(err, str) and err)


def _fuzz(protocols, n: int):
    @settings(max_examples=n, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(REPLY)
    def run(reply):
        for proto in protocols:
            _check(proto, reply)

    run()


def test_parsers_never_raise(protocols):
    _fuzz(protocols, 300)


@pytest.mark.slow
def test_parsers_never_raise_10k(protocols):
    _fuzz(protocols, 10_000)


def test_the_audit_inputs(protocols):
    """The replies that used to raise: a > 4,300-digit integer, deeply nested double-encoded
    arguments, and a long run of special tokens (quadratic before)."""
    huge = '<tool_call>\n{"name": "python", "arguments": {"code": ' + "1" * 5000 + "}}\n</tool_call>"
    nested = '<tool_call>\n{"name": "python", "arguments": ' + json.dumps("[" * 100_000) + "}\n</tool_call>"
    deep = '<tool_call>\n{"name": "python", "arguments": ' + "[" * 100_000 + "}\n</tool_call>"
    for proto in protocols:
        for reply in (huge, nested, deep, "<|a|>" * 32000 + "x"):
            _check(proto, reply)
    hermes = protocols[1]
    assert "not valid JSON" in hermes.parse_turn(huge, False).call.error
