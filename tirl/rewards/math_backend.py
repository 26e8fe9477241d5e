"""The math-verify equivalence check itself. Runs inside an isolated worker process.

``tirl.rewards.math.verify_math`` sends here only what its in-process fast paths (plain
numbers, word answers, identical strings) could not decide. math-verify's own signal-based
timeouts are disabled (``parsing_timeout=None``, ``timeout_seconds=None``): signals only work on
a main thread and cannot interrupt C code anyway; the deadline is enforced by killing this
process (``tirl.rewards.isolate``). ALGORITHMS.md §1, "Reward".
"""

from __future__ import annotations

import logging

from math_verify import parse, verify


class _DropTimeoutDisabledWarning(logging.Filter):
    """math-verify warns once that its timeout is disabled; here that is deliberate."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


def as_latex_answer(text: str) -> str:
    """Wrap a bare answer so math-verify extracts it whole: ``3/4`` -> ``\\boxed{3/4}``.

    Text that already carries its own ``\\boxed`` is left alone (a caller passed a full
    solution). Dollar-delimited text is boxed too: the box anchor has the highest priority in
    math-verify's extraction, so an answer like ``376 and 625`` is read as the set {376, 625}
    rather than as its last number.
    """
    if "\\boxed" in text or "\\fbox" in text:
        return text
    inner = text.strip()
    if len(inner) >= 2 and inner.startswith("$") and inner.endswith("$"):
        inner = inner.strip("$").strip()
    return "\\boxed{" + inner + "}"


def equivalent(gold: str, pred: str) -> bool:
    """True when math-verify finds ``pred`` equal to ``gold`` (order matters: gold first)."""
    gold_parsed = parse(as_latex_answer(gold), parsing_timeout=None)
    pred_parsed = parse(as_latex_answer(pred), parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))
