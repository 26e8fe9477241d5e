"""AutoTraj trajectory quality score and triage (Gong et al. 2026, arXiv 2601.23032; released
``trajectory_generate/traj_score.py``; ALGORITHMS.md §7):

    score = 0.4 * C + 0.3 * L + 0.3 * E

- C, no hedging: 0 when a ``<think>`` block holds a hedging word (maybe, unsure, guess, seems,
  perhaps, probably, might, likely, recheck), else 1. Words match whole and case-insensitively
  ("unlikely" is not "likely"). Text without ``<think>`` blocks (the Hermes protocol) is
  checked whole.
- L, length closeness to the shortest: ``exp(-(len - l*)^2 / (2 (0.5 l*)^2))`` with ``len`` the
  whitespace word count and ``l*`` the shortest correct trajectory of the same question.
- E, non-repetition: ``1 - (sum of counts of word trigrams occurring more than once) / #trigrams``;
  1 for texts under 6 words.

The text scored is the model's own (tool results removed by the caller): repetition or length
in a tool's output is not the model's doing.

Triage of a task's correct trajectories: keep all when every score >= 0.90; otherwise keep the
best when it scores >= 0.86 and send the others to the repairer; otherwise repair them all.
Wrong trajectories are always repaired. A repair is accepted when it is correct and scores
>= 0.86 (correct original) or >= 0.80 (wrong original).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

HEDGES = ("maybe", "unsure", "guess", "seems", "perhaps", "probably", "might", "likely", "recheck")
_HEDGE = re.compile(r"\b(" + "|".join(HEDGES) + r")\b", re.IGNORECASE)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
W_HEDGE, W_LEN, W_REP = 0.4, 0.3, 0.3


def no_hedging(text: str) -> float:
    """1.0 when no thinking block hedges, else 0.0."""
    blocks = _THINK.findall(text) or [text]
    return 0.0 if any(_HEDGE.search(b) for b in blocks) else 1.0


def word_count(text: str) -> int:
    return len(text.split())


def length_closeness(length: int, shortest: int) -> float:
    """``exp(-(len - l*)^2 / (2 (0.5 l*)^2))``; with l* = 0 only an empty text scores 1."""
    if shortest <= 0:
        return 1.0 if length <= 0 else 0.0
    return math.exp(-((length - shortest) ** 2) / (2 * (0.5 * shortest) ** 2))


def trigram_repetition(text: str) -> float:
    """Share of word-trigram occurrences whose trigram occurs more than once; 0 under 6 words."""
    words = text.split()
    if len(words) < 6:
        return 0.0
    grams = Counter(zip(words, words[1:], words[2:]))
    repeated = sum(c for c in grams.values() if c > 1)
    return repeated / (len(words) - 2)


def quality_score(text: str, shortest: int) -> float:
    """AutoTraj's score of one trajectory's model text, ``shortest`` = l* in words."""
    return W_HEDGE * no_hedging(text) + W_LEN * length_closeness(word_count(text), shortest) + W_REP * (1.0 - trigram_repetition(text))


def quality_scores(texts: Sequence[str]) -> list[float]:
    """Scores of a question's correct trajectories, l* = the shortest of them."""
    if not texts:
        return []
    shortest = min(word_count(t) for t in texts)
    return [quality_score(t, shortest) for t in texts]


@dataclass
class Triage:
    keep: list[int]
    repair: list[int]


def triage(scores: Sequence[float], keep_all: float = 0.90, keep_best: float = 0.86) -> Triage:
    """Which correct trajectories to keep as they are and which to repair (indices into scores)."""
    if not scores:
        return Triage([], [])
    if min(scores) >= keep_all:
        return Triage(list(range(len(scores))), [])
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    if scores[best] >= keep_best:
        return Triage([best], [i for i in range(len(scores)) if i != best])
    return Triage([], list(range(len(scores))))


def accept_repair(correct: bool, score: float, original_correct: bool, accept_correct: float = 0.86, accept_wrong: float = 0.80) -> bool:
    """AutoTraj's acceptance rule for a repaired trajectory."""
    return correct and score >= (accept_correct if original_correct else accept_wrong)
