"""Evaluation metrics as small pure functions (ALGORITHMS.md §9).

- ``pass_at_k``: the unbiased estimator of pass@k from n samples of which c are correct,
  ``1 - C(n-c, k) / C(n, k)`` (Chen et al., 2021, "Evaluating Large Language Models Trained on
  Code", eq. 1). Computed as the product ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` (their numerically
  stable form) so large n never forms a huge binomial coefficient.
- ``maj_at_k``: majority vote over the first k extracted answers, with answers grouped into
  equivalence classes by a caller-supplied ``same`` (math equivalence, normalised strings).
- ``mean_pass_at_k``: the per-task estimates averaged over tasks, for several k at once.
- ``efficiency``, ``successful_execution``, ``reasoning_length``, ``conciseness``: ET-Agent's
  behaviour metrics (ALGORITHMS.md §6; arXiv 2601.06860 §5, App. C.3), averaged over trajectories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct (Chen et al., 2021).

    The probability that at least one of k samples drawn without replacement from the n is
    correct. Raises ValueError when k > n, c > n, k < 1 or c < 0.
    """
    if k < 1:
        raise ValueError(f"pass@k needs k >= 1, got k={k}")
    if c < 0:
        raise ValueError(f"pass@k needs c >= 0 correct samples, got c={c}")
    if k > n:
        raise ValueError(f"pass@k needs k <= n: k={k} but only n={n} samples")
    if c > n:
        raise ValueError(f"pass@k needs c <= n: c={c} correct out of n={n} samples")
    if n - c < k:  # every draw of k samples contains a correct one
        return 1.0
    miss = 1.0  # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i)
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def mean_pass_at_k(counts: Iterable[tuple[int, int]], ks: Iterable[int]) -> dict[int, float]:
    """Mean over tasks of pass@k for each k. ``counts`` holds one ``(n, c)`` per task.

    Every task must have at least k samples for every k asked for (ValueError otherwise);
    with no tasks the mean is 0.0.
    """
    counts = list(counts)
    out: dict[int, float] = {}
    for k in ks:
        values = [pass_at_k(n, c, k) for n, c in counts]
        out[k] = sum(values) / len(values) if values else 0.0
    return out


def majority_answer(answers: Sequence[str | None], same: Callable[[str, str], bool]) -> str | None:
    """The answer of the largest equivalence class; None when no answer is given.

    Each answer joins the first class whose representative (its first member) it is ``same``
    as, so ``same`` is called as ``same(representative, answer)`` and need not be transitive.
    None answers are not votes: they never form a class and never win.
    Ties are broken by first occurrence: of the largest classes, the one whose first member
    comes earliest in ``answers`` wins.
    """
    reps: list[str] = []
    votes: list[int] = []
    for a in answers:
        if a is None:
            continue
        for i, rep in enumerate(reps):
            if same(rep, a):
                votes[i] += 1
                break
        else:
            reps.append(a)
            votes.append(1)
    if not reps:
        return None
    best = max(range(len(reps)), key=lambda i: (votes[i], -i))  # most votes, then earliest class
    return reps[best]


def maj_at_k(
    answers: Sequence[str | None],
    k: int,
    is_correct: Callable[[str | None], bool],
    same: Callable[[str, str], bool],
) -> float:
    """1.0 when the majority answer of the first ``k`` answers is correct, else 0.0.

    See ``majority_answer`` for classes, None answers and ties. If all k answers are None
    there is no winner and the vote scores 0.0. Raises ValueError when k < 1 or k > len(answers).
    """
    if k < 1:
        raise ValueError(f"maj@k needs k >= 1, got k={k}")
    if k > len(answers):
        raise ValueError(f"maj@k needs k <= the number of answers: k={k}, {len(answers)} answers")
    winner = majority_answer(answers[:k], same)
    if winner is None:
        return 0.0
    return 1.0 if is_correct(winner) else 0.0


# -- ET-Agent behaviour metrics (ALGORITHMS.md §6) --------------------------------------------
# P_i is a trajectory's correctness (1/0, or a score in [0, 1]); the means run over trajectories.


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def efficiency(correct: Sequence[float], tool_calls: Sequence[int]) -> float:
    """``mean(P_i / T_i)`` with T_i the tool calls; P_i as-is when T_i = 0."""
    return _mean([p / t if t > 0 else p for p, t in zip(correct, tool_calls, strict=True)])


def successful_execution(correct: Sequence[float], failed_calls: Sequence[int]) -> float:
    """``mean(P_i / max(wrong_calls_i, 1))``: correct answers reached without failed calls."""
    return _mean([p / max(w, 1) for p, w in zip(correct, failed_calls, strict=True)])


def reasoning_length(correct: Sequence[float], lengths: Sequence[int]) -> float:
    """``mean(P_i / L_i)`` with L_i the policy tokens (tool results excluded); 0 for L_i = 0."""
    return _mean([p / n if n > 0 else 0.0 for p, n in zip(correct, lengths, strict=True)])


def conciseness(verdicts: Sequence[bool | None]) -> float | None:
    """``N_nr / N``: share of trajectories a judge found free of redundant tool calls. Unreadable
    verdicts (None) are left out of N; None when no verdict could be read."""
    read = [v for v in verdicts if v is not None]
    return sum(read) / len(read) if read else None
