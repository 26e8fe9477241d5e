"""ET-Agent group-wise Pareto sampling (Chen, Dong, Dou 2026, arXiv 2601.06860, §4.2.2 and
App. B; ALGORITHMS.md §6 Phase 2a).

Each candidate task has a group of K rollouts from the current policy. Two dispersions are
maximised: the variance of correctness (math 0/1, QA F1) and the variance of tool-call counts.
The paper's text says "standard deviation", its formula and the released code (``np.var``) use
the variance; dominance is the same under either, crowding distances differ slightly, so the
variance is used. NSGA-II (Deb et al. 2002) fast non-dominated sort ranks the tasks in fronts;
fronts fill the selection in order, and the front that would overflow ``n`` keeps its members
of largest crowding distance (boundary points ∞; interior points the sum over objectives of
(next − previous) / range).

The released code keeps only groups with mixed outcomes *after* selecting; tirl applies the
filter *before* selecting, so ``n`` is filled whenever enough mixed groups exist. Such groups
are the only ones with a GRPO signal from correctness (all-right or all-wrong groups have zero
correctness variance anyway; for QA "mixed" means one F1 >= the threshold and one below it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tirl.rewards.verify import score_answer
from tirl.types import StopReason, Task, Trajectory

Point = tuple[float, float]


def dominates(p: Sequence[float], q: Sequence[float]) -> bool:
    """p dominates q (maximisation): no worse in every objective, better in at least one."""
    return all(a >= b for a, b in zip(p, q)) and any(a > b for a, b in zip(p, q))


def non_dominated_sort(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """NSGA-II fast non-dominated sort: fronts of indices, best first, each in index order."""
    n = len(points)
    dominated_by_me: list[list[int]] = [[] for _ in range(n)]
    n_dominating = [0] * n
    for i in range(n):
        for j in range(n):
            if i != j and dominates(points[i], points[j]):
                dominated_by_me[i].append(j)
            elif i != j and dominates(points[j], points[i]):
                n_dominating[i] += 1
    fronts: list[list[int]] = []
    current = [i for i in range(n) if n_dominating[i] == 0]
    while current:
        fronts.append(sorted(current))
        nxt = []
        for i in current:
            for j in dominated_by_me[i]:
                n_dominating[j] -= 1
                if n_dominating[j] == 0:
                    nxt.append(j)
        current = nxt
    return fronts


def crowding_distance(points: Sequence[Sequence[float]], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II crowding distance of each member of ``front``: ∞ at each objective's extremes,
    else the sum over objectives of the normalised gap between its neighbours. An objective
    with zero range adds nothing to interior points."""
    dist = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    for k in range(len(points[front[0]])):
        order = sorted(front, key=lambda i: (points[i][k], i))
        lo, hi = points[order[0]][k], points[order[-1]][k]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for a, b, c in zip(order, order[1:], order[2:]):
            dist[b] += (points[c][k] - points[a][k]) / (hi - lo)
    return dist


def nsga2_select(points: Sequence[Sequence[float]], n: int) -> list[int]:
    """Indices of the ``n`` best points: whole fronts first, then the overflowing front by
    decreasing crowding distance (ties: lower index first). Returned in selection order."""
    if n < 0:
        raise ValueError(f"cannot select {n} tasks")
    chosen: list[int] = []
    for front in non_dominated_sort(points):
        if len(chosen) + len(front) <= n:
            chosen += front
            continue
        dist = crowding_distance(points, front)
        chosen += sorted(front, key=lambda i: (-dist[i], i))[: n - len(chosen)]
        break
    return chosen


def variance(xs: Sequence[float]) -> float:
    """Population variance (``np.var``, as the released code)."""
    if not xs:
        return 0.0
    mu = sum(xs) / len(xs)
    return sum((x - mu) ** 2 for x in xs) / len(xs)


@dataclass
class GroupStats:
    """One task's group: the two objectives and whether its outcomes are mixed."""

    task_id: str
    n: int
    corr_var: float
    tool_var: float
    mixed: bool


def _score(task: Task, t: Trajectory) -> float:
    return t.rewards["correct"] if "correct" in t.rewards else score_answer(task, t.answer)


def group_stats(task: Task, group: Sequence[Trajectory], qa_threshold: float = 0.75) -> GroupStats:
    """Objectives of one group; infrastructure failures are left out (never scored)."""
    live = [t for t in group if t.stop_reason is not StopReason.ERROR]
    scores = [_score(task, t) for t in live]
    cut = qa_threshold if task.verifier == "qa" else 1.0
    mixed = any(s >= cut for s in scores) and any(s < cut for s in scores)
    return GroupStats(task.id, len(live), variance(scores), variance([float(t.n_tool_calls) for t in live]), mixed)


@dataclass
class ParetoSelection:
    tasks: list[Task]
    stats: list[GroupStats]
    """Stats of every candidate, in input order."""
    n_candidates: int
    n_mixed: int


def select_tasks(
    tasks: Sequence[Task],
    groups: Sequence[Sequence[Trajectory]],
    n: int,
    mixed_only: bool = True,
    qa_threshold: float = 0.75,
) -> ParetoSelection:
    """ET-Agent's task selection for the next RL round (see the module docstring)."""
    if len(tasks) != len(groups):
        raise ValueError(f"got {len(groups)} trajectory groups for {len(tasks)} tasks")
    stats = [group_stats(t, g, qa_threshold) for t, g in zip(tasks, groups)]
    pool = [i for i, s in enumerate(stats) if s.n >= 2 and (s.mixed or not mixed_only)]
    chosen = nsga2_select([(stats[i].corr_var, stats[i].tool_var) for i in pool], n)
    return ParetoSelection([tasks[pool[c]] for c in chosen], stats, len(tasks), sum(s.mixed for s in stats))


def write_tasks(tasks: Sequence[Task], path: str | Path) -> Path:
    """Tasks as JSONL in the task loader's format (``id``, ``prompt``, ``answer``; extra fields
    ``verifier`` and ``source`` for reading; load with ``task.name=PATH``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        for t in tasks:
            f.write(json.dumps({"id": t.id, "prompt": t.prompt, "answer": t.answer, "verifier": t.verifier, "source": t.meta.get("source")}) + "\n")
    tmp.replace(path)
    return path
