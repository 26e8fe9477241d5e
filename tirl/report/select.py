"""Which of a run's rollouts a report embeds (``log.report``): a few steps spread over the run,
whole task groups within each, the informative ones first, so a long run's report stays small
and still shows a tool error, a truncation, a right and a wrong answer where the run has them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tirl.types import StopReason, Trajectory


def pick_steps(steps: Sequence[int], n: int) -> list[int]:
    """``n`` of ``steps`` spread evenly, the first and the last included, in order."""
    steps = sorted(set(steps))
    if len(steps) <= n:
        return steps
    if n == 1:
        return [steps[-1]]
    idx = {round(i * (len(steps) - 1) / (n - 1)) for i in range(n)}
    return [steps[i] for i in sorted(idx)]


def tool_error(t: Trajectory) -> bool:
    """A call that failed: the code raised, timed out, was malformed or got no observation."""
    return any(s.call is not None and (s.observation is None or not s.observation.ok or s.observation.timed_out) for s in t.steps)


def truncated(t: Trajectory) -> bool:
    return t.stop_reason is StopReason.LENGTH


def correct(t: Trajectory) -> bool:
    return t.rewards.get("correct", 0.0) >= 1.0


_KINDS: list[Callable[[Trajectory], bool]] = [tool_error, truncated, correct, lambda t: not correct(t)]


def group_by_task(trajs: Sequence[Trajectory]) -> dict[str, list[Trajectory]]:
    """Trajectories by task id, tasks in first-seen order, samples in sample order."""
    out: dict[str, list[Trajectory]] = {}
    for t in trajs:
        out.setdefault(t.task_id, []).append(t)
    return {k: sorted(v, key=lambda t: t.sample) for k, v in out.items()}


def pick_tasks(groups: dict[str, list[Trajectory]], n: int) -> list[str]:
    """``n`` task ids: first a task showing each kind (a tool error, a truncation, a correct and a
    wrong answer) not yet shown, then the rest in file order."""
    chosen: list[str] = []
    for kind in _KINDS:
        if len(chosen) >= n:
            break
        shown = any(kind(t) for tid in chosen for t in groups[tid])
        if not shown:
            hit = next((tid for tid, g in groups.items() if tid not in chosen and any(kind(t) for t in g)), None)
            if hit is not None:
                chosen.append(hit)
    chosen += [tid for tid in groups if tid not in chosen][: max(0, n - len(chosen))]
    order = list(groups)
    return sorted(chosen, key=order.index)


def pick_eval_tasks(first: dict[str, list[Trajectory]], last: dict[str, list[Trajectory]], n: int) -> list[str]:
    """``n`` held-out task ids: those whose share of correct samples changed between the first
    and the last evaluation first (what training fixed or broke), then the rest in order."""

    def share(g: list[Trajectory]) -> float:
        return sum(correct(t) for t in g) / len(g) if g else 0.0

    order = list(first) + [tid for tid in last if tid not in first]
    changed = [tid for tid in order if tid in first and tid in last and share(first[tid]) != share(last[tid])]
    rest = [tid for tid in order if tid not in changed]
    return (changed + rest)[:n]
