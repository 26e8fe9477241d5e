"""Token F1 for short-answer QA, with SQuAD answer normalisation.

The normalisation and F1 follow the official SQuAD v1.1 evaluation script (Rajpurkar et al.,
2016): lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace;
F1 is the harmonic mean of token precision and recall over the multiset of shared tokens.
As in that script, two answers that are both empty after normalisation score 1, and an empty
answer against a non-empty one scores 0. ALGORITHMS.md §1: QA reward = max F1 over golds.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, remove punctuation, articles and extra whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def f1(pred: str, gold: str) -> float:
    """Token-level F1 between one prediction and one gold answer."""
    pred_toks = normalize_answer(pred).split()
    gold_toks = normalize_answer(gold).split()
    if not pred_toks or not gold_toks:
        return float(pred_toks == gold_toks)
    n_same = sum((Counter(pred_toks) & Counter(gold_toks)).values())
    if n_same == 0:
        return 0.0
    precision = n_same / len(pred_toks)
    recall = n_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def max_f1(pred: str, golds: str | Iterable[str]) -> float:
    """Best F1 of ``pred`` over the acceptable gold answers (0.0 when there are none)."""
    if isinstance(golds, str):
        golds = [golds]
    return max((f1(pred, g) for g in golds), default=0.0)
