"""Extract the final answer: the content of the last ``\\boxed{...}`` (or ``\\fbox{...}``).

ALGORITHMS.md §1: a math answer is "the last ``\\boxed{}``" of the answer text. Braces are
matched with a depth counter so nested groups survive (``\\boxed{\\frac{1}{2}}`` gives
``\\frac{1}{2}``); escaped braces ``\\{`` and ``\\}`` are literal characters and do not count.
If the *last* box is unbalanced (truncated output) the result is None: falling back to an
earlier box would score an answer the model had moved past. The brace-less form
``\\boxed 5`` (common in MATH solutions) gives the following token.

It lives with the protocols because the protocols and the rewards both read answers this way
(``Protocol.finalize`` extracts a trajectory's answer, the verifiers and the gold self-test in
``tirl.rewards`` score it); rewards import it from here, and protocol/ imports nothing from
rewards/ (docs/DESIGN.md, "Layers"). Standard library only.
"""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def _brace_content(text: str, open_at: int) -> str | None:
    """Content of the group whose ``{`` is at ``open_at``; None when it never closes."""
    depth = 0
    i = open_at
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":  # skip the escaped character (\{ \} \\)
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}``, stripped; None if absent or unbalanced."""
    if not isinstance(text, str):
        return None
    matches = list(_BOX.finditer(text))
    if not matches:
        return None
    end = matches[-1].end()
    rest = text[end:]
    stripped = rest.lstrip()
    if stripped.startswith("{"):
        content = _brace_content(text, end + (len(rest) - len(stripped)))
        return None if content is None else content.strip()
    if rest[:1].isspace():  # "\boxed 5": the next whitespace-delimited token
        token = re.match(r"[^\s$]+", stripped)
        return token.group(0) if token else None
    return None
