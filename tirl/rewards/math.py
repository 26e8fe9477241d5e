"""Math answer equivalence: ``verify_math(pred, gold) -> bool``.

ALGORITHMS.md §1, "Reward": a math answer is correct when math-verify finds it equivalent to
the gold answer; math-verify's own signal-based timeouts are disabled and tirl enforces its
own. ``pred`` is an answer, normally the content of the last ``\\boxed{}`` (see
``tirl.protocol.answer``); text that still contains a ``\\boxed{}`` is reduced to that content
first (and scores False when its last box is unbalanced).

Decision order (cheapest first, all but the last in-process):

1. Plain numerals (``12,345``, ``-7``, ``3.0``, ``$1,234``, LaTeX ``12{,}345``/``12\\,345``):
   compared exactly as rationals. Unequal integers are decided here (False); unequal
   decimals fall through so math-verify's rounding rules apply.
2. Word answers (``Yes``, ``No integer solutions``): compared after ``\\text{}`` unwrapping and
   SQuAD normalisation (case, punctuation, articles). math-verify would read ``No`` as the
   product ``N*o`` and accept ``on``; words are never sent to it.
3. Identical strings (after collapsing whitespace): True.
4. Everything else goes to math-verify in a killable worker process
   (``tirl.rewards.isolate``); a timeout or a worker crash counts as False and is counted in
   ``math_verify_stats()``. Thread-safe: call it from any thread.

Input that cannot be read as an answer gives False; only an infrastructure failure (a worker
that cannot start) raises ``WorkerStartError`` -- that must not be scored as the model's 0.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from tirl.protocol.answer import last_boxed
from tirl.rewards.isolate import CallStatus, IsolatedCaller
from tirl.rewards.qa import normalize_answer

BACKEND_TARGET = "tirl.rewards.math_backend:equivalent"
MAX_ANSWER_CHARS = 20_000  # longer "answers" are not answers; math-verify would only be slow on them

_NUMERAL = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+")
_THIN_SPACE = re.compile(r"(?<=\d)(?:\\,|\\ |\\!|~|\{,\})(?=\d)")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_WORDY = re.compile(r"[A-Za-z0-9][A-Za-z0-9\s,.'!?-]*")
_MATH_WORDS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "inf", "infty",
    "mod", "gcd", "lcm", "max", "min", "det", "lim", "sum", "prod", "frac", "binom", "arcsin",
    "arccos", "arctan", "sinh", "cosh", "tanh",
}  # fmt: skip
_SHORT_WORDS = {"no", "yes", "none", "odd", "even", "all", "true", "false", "dne", "neither", "both"}


@dataclass
class VerifyStats:
    """How ``verify_math`` calls were decided. ``timeouts`` and ``crashes`` scored False."""

    calls: int = 0
    numeric: int = 0
    text: int = 0
    identical: int = 0
    isolated: int = 0
    timeouts: int = 0
    errors: int = 0
    crashes: int = 0


def _unwrap(text: str) -> str:
    """Strip math delimiters, ``\\text{}``-style wrappers and a trailing full stop."""
    s = text.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            s = s[len(left) : len(s) - len(right)].strip()
            break
    for _ in range(3):  # nested wrappers: \textbf{\text{No}}
        new = _TEXT_WRAPPER.sub(r"\1", s)
        if new == s:
            break
        s = new
    s = s.replace("\u2212", "-").replace("\\varnothing", "\\emptyset")  # math-verify knows only \emptyset
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    return s


def _as_numeral(s: str) -> Fraction | None:
    """The exact value of a plain numeral (thousands separators, currency sign allowed)."""
    t = _THIN_SPACE.sub("", s)
    if t.startswith("\\$"):
        t = t[2:]
    elif t.startswith("$"):
        t = t[1:]
    t = t.strip()
    if not _NUMERAL.fullmatch(t):
        return None
    return Fraction(t.replace(",", ""))


def is_word_answer(text: str) -> bool:
    """True for answers made of words (``No``, ``Monotonically increasing``), not symbols.

    A single short token is treated as math (``ab`` is a product) unless it is a common answer
    word; tokens that are function names (``sin``, ``log``) make the answer math; with digits,
    at least two words are needed (``Always greater than 20``, not ``3 apples``).
    """
    s = _unwrap(text)
    if not _WORDY.fullmatch(s):
        return False
    tokens = [t.lower() for t in re.findall(r"[A-Za-z]+", s)]
    if not tokens or any(t in _MATH_WORDS for t in tokens):
        return False
    if any(ch.isdigit() for ch in s):  # "Always greater than 20" is words; "3 apples", "12 and 15" are not
        return sum(len(t) >= 2 for t in tokens) >= 2
    if len(tokens) == 1:
        return tokens[0] in _SHORT_WORDS or len(tokens[0]) >= 4
    return any(len(t) >= 2 for t in tokens)


def text_key(text: str) -> str:
    """The comparison key of a word answer: unwrapped, SQuAD-normalised."""
    return normalize_answer(_unwrap(text))


class MathVerifier:
    """``verify_math`` with its own worker pool and counters (the module keeps a default one)."""

    def __init__(self, max_workers: int = 2, target: str = BACKEND_TARGET) -> None:
        self._caller = IsolatedCaller(target, max_workers=max_workers)
        self._stats = VerifyStats()
        self._lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self._stats, name, getattr(self._stats, name) + 1)

    def stats(self) -> VerifyStats:
        with self._lock:
            return replace(self._stats)

    def close(self) -> None:
        self._caller.close()

    def _quick(self, pred: Any, gold: Any) -> bool | None:
        """Steps 1-3 of the module docstring: a verdict without math-verify, or None."""
        if pred is None or gold is None:
            return False
        try:
            pred_s, gold_s = str(pred), str(gold)
        except Exception:
            return False
        if len(pred_s) > MAX_ANSWER_CHARS:
            return False
        p, g = _unwrap(pred_s), _unwrap(gold_s)
        if not p or not g:
            return False

        pv, gv = _as_numeral(p), _as_numeral(g)
        if pv is not None and gv is not None:
            if pv == gv:
                self._count("numeric")
                return True
            if pv.denominator == 1 and gv.denominator == 1 and "." not in p + g:
                self._count("numeric")
                return False

        if is_word_answer(g):
            self._count("text")
            return text_key(p) == text_key(g)

        if " ".join(p.split()) == " ".join(g.split()):
            self._count("identical")
            return True
        return None

    def _isolated(self, pred: Any, gold: Any, timeout_s: float) -> bool:
        """Step 4: math-verify in a worker process, under a deadline."""
        self._count("isolated")
        result = self._caller.call((_unwrap(str(gold)), _unwrap(str(pred))), timeout_s)
        if result.status is CallStatus.OK:
            return bool(result.value)
        self._count({CallStatus.TIMEOUT: "timeouts", CallStatus.CRASH: "crashes"}.get(result.status, "errors"))
        return False

    def __call__(self, pred: Any, gold: Any, timeout_s: float = 5.0) -> bool:
        return self.verify_any(pred, [gold], timeout_s)

    def verify_any(self, pred: Any, golds: list[Any], timeout_s: float = 5.0) -> bool:
        """True when ``pred`` matches any of ``golds``. Cheap checks on every gold run before
        any math-verify call, so an exact alternative never waits behind a slow one."""
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self._count("calls")
        if isinstance(pred, str) and ("\\boxed" in pred or "\\fbox" in pred):
            pred = last_boxed(pred)  # a whole solution was passed: score its final answer
        undecided = []
        for gold in golds:
            verdict = self._quick(pred, gold)
            if verdict is True:
                return True
            if verdict is None:
                undecided.append(gold)
        return any(self._isolated(pred, gold, timeout_s) for gold in undecided)


_default: MathVerifier | None = None
_default_lock = threading.Lock()


def default_verifier() -> MathVerifier:
    global _default
    with _default_lock:
        if _default is None:
            _default = MathVerifier()
        return _default


def configure_math_verifier(max_workers: int) -> MathVerifier:
    """Replace the default verifier by one with ``max_workers`` worker processes (call this
    before scoring starts: a call already holding the old verifier would find it closed)."""
    global _default
    new = MathVerifier(max_workers=max_workers)
    with _default_lock:
        old, _default = _default, new
    if old is not None:
        old.close()
    return new


def verify_math(pred: str, gold: str, timeout_s: float = 5.0) -> bool:
    """True when the answer ``pred`` is mathematically equivalent to ``gold``. Never raises on input."""
    return default_verifier()(pred, gold, timeout_s)


def math_verify_stats() -> VerifyStats:
    """Counters of the default verifier (timeouts, crashes, which path decided)."""
    return default_verifier().stats()


__all__ = [
    "MathVerifier",
    "VerifyStats",
    "verify_math",
    "math_verify_stats",
    "default_verifier",
    "configure_math_verifier",
    "is_word_answer",
    "text_key",
]
