"""When two extracted answers count as the same vote (maj@k's equivalence classes).

One function per verifier kind (``Task.meta["verifier"]``), all ``same(a, b) -> bool``, kept in
a plain dict beside ``tirl.rewards.verify.VERIFIERS``:

- "math": ``verify_math`` equivalence, so ``1,234``, ``1234`` and ``\\frac{2}{4}`` / ``1/2``
  fall into one class. ``a`` is the class representative and is passed as the gold side.
- "qa": equality after SQuAD normalisation (case, punctuation, articles, whitespace). F1 is a
  score, not an equivalence, so it is not used for grouping.
- "exact": equality after stripping surrounding whitespace.
"""

from __future__ import annotations

from collections.abc import Callable

from tirl.rewards.math import default_verifier
from tirl.rewards.qa import normalize_answer

SameFn = Callable[[str, str], bool]


def same_math(a: str, b: str) -> bool:
    return default_verifier()(b, a)  # (pred, gold): the representative plays the gold


def same_qa(a: str, b: str) -> bool:
    return normalize_answer(a) == normalize_answer(b)


def same_exact(a: str, b: str) -> bool:
    return a.strip() == b.strip()


EQUIVALENCE: dict[str, SameFn] = {"math": same_math, "qa": same_qa, "exact": same_exact}


def same_fn(verifier: str) -> SameFn:
    """The equivalence for a verifier kind; ValueError naming the known kinds otherwise."""
    try:
        return EQUIVALENCE[verifier]
    except KeyError:
        raise ValueError(f"no answer equivalence for verifier {verifier!r}; known: {', '.join(sorted(EQUIVALENCE))}") from None
