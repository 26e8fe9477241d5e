"""last_boxed: nested braces, several boxes, unbalanced, fbox, never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tirl.protocol.answer import last_boxed


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The answer is \\boxed{42}.", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\frac{\\sqrt{3}}{\\sqrt{4 + {x}}}}", "\\frac{\\sqrt{3}}{\\sqrt{4 + {x}}}"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{1} and finally \\fbox{3}", "3"),
        ("\\boxed{ 7 }", "7"),
        ("\\boxed {7}", "7"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces are characters, not groups
        ("\\boxed{\\}}", "\\}"),
        ("\\boxed 5 apples", "5"),
        ("\\boxed{}", ""),
        ("<answer>\\boxed{x^{2}}</answer>", "x^{2}"),
    ],
)
def test_extracts(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "no box here",
        "",
        "\\boxed{unclosed",
        "\\boxed{1} then \\boxed{2",  # the last box is truncated: no fallback to an earlier one
        "\\boxed{\\frac{1}{2}",
        "\\boxedx{3}",  # another command
        "\\boxed",
        "boxed{3}",
    ],
)
def test_absent_or_unbalanced(text):
    assert last_boxed(text) is None


def test_non_string_is_none():
    assert last_boxed(None) is None  # type: ignore[arg-type]


_PIECES = st.sampled_from(["\\boxed{", "\\fbox{", "\\boxed ", "{", "}", "\\{", "\\}", "\\", "$", " ", "1", "x"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join))
def test_never_raises_on_boxy_text(text):
    out = last_boxed(text)
    assert out is None or isinstance(out, str)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_never_raises_on_arbitrary_text(text):
    out = last_boxed(text)
    assert out is None or (isinstance(out, str) and out in text)


@given(st.text(alphabet=st.sampled_from(list("abc123+-^ ")), max_size=20))
def test_roundtrip_of_brace_free_content(content):
    assert last_boxed(f"so \\boxed{{{content}}} done") == content.strip()
