"""Evaluate a policy: the training tool loop, n samples per task, scored, summarised.

``evaluate`` rolls out ``n_samples`` trajectories per task with the same agent loop training
uses (``tirl.rollout.rollout``), applies the reward specs (by default
``tirl.rewards.presets.default_rewards``: outcome, plus zero-weight ``correct`` and
``format_ok``), and computes ALGORITHMS.md §9:

- accuracy: share of samples whose answer the task's verifier scores 1 (math-verify
  equivalence for math, exact normalised match for QA); ``mean_score`` is the mean verifier
  score itself (equal to accuracy for math, mean token-F1 for QA);
- pass@k for each asked k <= n (the unbiased estimator, ``tirl.eval.metrics.pass_at_k``);
- maj@n: majority vote over each task's answers, grouped by the verifier's equivalence
  (``tirl.eval.equivalence``);
- tool use: calls per task (mean calls per attempt, i.e. per trajectory), share of
  trajectories that call a tool, share of calls that succeed; turns and void turns;
  mean response (policy) tokens; format-ok rate; stop reasons; ET-Agent's §6 metrics:
  Efficiency ``mean(P/T)``, Successful Execution ``mean(P/max(failed calls, 1))``, Reasoning
  length ``mean(P/L)`` (reported x1000, L = policy tokens, tool results excluded) and, when a judge
  is given, Conciseness (share of trajectories the judge finds free of redundant calls). P is the
  verifier's score (1/0 for math, token F1 for QA), as in ET-Agent's evaluation code.

Infrastructure failures (stop reason ``error``) are counted and left out of every score, as in
training (DESIGN.md invariant 5). A task whose samples were partly dropped enters pass@k only
for k up to its remaining sample count; ``pass_at_k_tasks`` says how many tasks each pass@k
averages over. The caller owns the protocol's tools: they are not closed here.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from tirl.engine.base import Engine
from tirl.eval.equivalence import same_fn
from tirl.eval.metrics import conciseness, efficiency, majority_answer, pass_at_k, reasoning_length, successful_execution
from tirl.protocol.base import Protocol
from tirl.rewards.base import RewardSpec
from tirl.rewards.compose import apply_rewards
from tirl.rewards.presets import default_rewards
from tirl.rewards.verify import score_answer
from tirl.rollout.agent_loop import RolloutConfig, rollout
from tirl.tasks.lookup.solver import found_needed
from tirl.types import Observation, StopReason, Task, Trajectory

if TYPE_CHECKING:
    from tirl.judge.llm import ChatModel


@dataclass
class TaskEval:
    """One task's outcome: ``n`` scored samples, ``correct`` of them right, the majority answer."""

    task_id: str
    n: int
    correct: int
    majority: str | None
    majority_correct: bool
    infra_errors: int = 0


@dataclass
class EvalReport:
    """Evaluation metrics over ``n_tasks`` tasks x ``n_samples`` samples. Rates are over scored
    trajectories (infrastructure failures excluded); ``groups`` holds the trajectories, one
    list per task, for saving (it is left out of ``to_dict``)."""

    n_tasks: int
    n_samples: int
    n_trajectories: int
    accuracy: float
    mean_score: float
    mean_reward: float
    pass_at_k: dict[int, float]
    pass_at_k_tasks: dict[int, int]
    """How many tasks each pass@k averages over (those with at least k scored samples)."""
    maj_at_k: dict[int, float]
    format_ok: float
    tool_calls_per_task: float
    """Mean tool calls per attempt at a task (per trajectory)."""
    tool_calls_by_tool: dict[str, float]
    """The same, per tool name (malformed calls that name no tool under ``""``)."""
    tool_use_rate: float
    tool_success_rate: float | None
    """Share of tool calls whose observation is ok (malformed calls count as failures); None without calls."""
    mean_turns: float
    """Mean assistant turns (steps) per trajectory."""
    void_turn_rate: float
    """Share of trajectories stopped by a void turn (neither a tool call nor an answer)."""
    mean_policy_tokens: float
    mean_tool_tokens: float
    efficiency: float
    successful_execution: float
    reasoning_length: float
    """ET-Agent's mean(P/L), x1000 (the paper's tables read about 3 at this scale)."""
    stop_reasons: dict[str, int]
    infra_errors: int
    wall_s: float
    search_hit_rate: float | None = None
    """Share of search calls that returned an article the task's plan needs (with the sentence
    that holds the fact); only for tasks that carry a plan (``lookup``), else None."""
    conciseness: float | None = None
    """Share of judged trajectories with no redundant tool call (needs a judge); None without one."""
    conciseness_unread: int = 0
    """Judge replies that could not be read (left out of conciseness)."""
    per_task: list[TaskEval] = field(default_factory=list)
    groups: list[list[Trajectory]] = field(default_factory=list, repr=False, compare=False)

    def scalars(self) -> dict[str, float]:
        """Flat scalar metrics for logging (``pass@1``, ``maj@8``, ``accuracy``, ...); a rate
        that is undefined (``tool_success_rate`` without calls) is left out."""
        out: dict[str, float] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f.name] = float(v)
        out.update({f"pass@{k}": v for k, v in self.pass_at_k.items()})
        out.update({f"tool_calls/{name or 'malformed'}": v for name, v in self.tool_calls_by_tool.items()})
        out.update({f"maj@{k}": v for k, v in self.maj_at_k.items()})
        return out

    def to_dict(self) -> dict:
        """A JSON-ready dict of everything but the trajectories (dict keys become strings)."""
        out = {}
        for f in fields(self):
            if f.name == "groups":
                continue
            v = getattr(self, f.name)
            if f.name == "per_task":
                v = [asdict(t) for t in v]
            elif isinstance(v, dict):
                v = {str(k): x for k, x in v.items()}
            out[f.name] = v
        return out

    def rows(self) -> list[tuple[str, str]]:
        """(metric, value) pairs for a printed table, like ``RolloutSummary.rows``."""
        stops = ", ".join(f"{k} {v}" for k, v in sorted(self.stop_reasons.items(), key=lambda kv: -kv[1]))
        rows = [
            ("tasks x samples", f"{self.n_tasks} x {self.n_samples} ({self.n_trajectories} trajectories)"),
            ("accuracy", f"{self.accuracy:.3f}"),
        ]
        if self.mean_score != self.accuracy:
            rows.append(("mean score", f"{self.mean_score:.3f}"))
        for k, v in self.pass_at_k.items():
            counted = self.pass_at_k_tasks.get(k, self.n_tasks)
            rows.append((f"pass@{k}", f"{v:.3f}" + (f" ({counted} tasks)" if counted != self.n_tasks else "")))
        rows += [(f"maj@{k}", f"{v:.3f}") for k, v in self.maj_at_k.items()]
        rows += [
            ("format ok", f"{self.format_ok:.3f}"),
            ("mean reward", f"{self.mean_reward:.3f}"),
            ("tool calls / task", f"{self.tool_calls_per_task:.2f}"),
            *((f"  {name or 'malformed'} calls / task", f"{v:.2f}") for name, v in sorted(self.tool_calls_by_tool.items())),
            ("tool-use rate", f"{self.tool_use_rate:.3f}"),
            ("tool success rate", "n/a (no calls)" if self.tool_success_rate is None else f"{self.tool_success_rate:.3f}"),
            ("turns / trajectory", f"{self.mean_turns:.2f}"),
            ("void-turn rate", f"{self.void_turn_rate:.3f}"),
            ("mean response tokens", f"{self.mean_policy_tokens:.1f}"),
            ("efficiency (ET-Agent)", f"{self.efficiency:.3f}"),
            ("successful execution", f"{self.successful_execution:.3f}"),
            ("reasoning length (P/L x1000)", f"{self.reasoning_length:.3f}"),
        ]
        if self.search_hit_rate is not None:
            rows.append(("searches that found a needed article", f"{self.search_hit_rate:.3f}"))
        if self.conciseness is not None:
            rows.append(
                ("conciseness (judge)", f"{self.conciseness:.3f}" + (f" ({self.conciseness_unread} unread)" if self.conciseness_unread else ""))
            )
        rows += [
            ("stop reasons", stops),
            ("infra errors (dropped)", str(self.infra_errors)),
            ("wall time", f"{self.wall_s:.1f} s"),
        ]
        return rows


def failed_call(obs: Observation | None) -> bool:
    """ET-Agent's "wrong" call (App. C.3: empty, timed-out or erroring results): a call whose
    observation is not ok (an error, a timeout, a malformed call) or that got no observation."""
    return obs is None or not obs.ok or obs.timed_out or not obs.output.strip()


def _score(task: Task, traj: Trajectory) -> float:
    """The verifier's score, reusing the ``correct`` reward component when it was computed."""
    if "correct" in traj.rewards:
        return traj.rewards["correct"]
    return score_answer(task, traj.answer)


def _eval_ks(ks: Sequence[int], n_samples: int) -> list[int]:
    if n_samples < 1:
        raise ValueError(f"evaluation needs n_samples >= 1, got {n_samples}")
    bad = [k for k in ks if k < 1]
    if bad:
        raise ValueError(f"pass@k needs every k >= 1, got {bad}")
    return sorted({k for k in ks if k <= n_samples})


def summarize_eval(
    tasks: Sequence[Task],
    groups: list[list[Trajectory]],
    protocol: Protocol,
    n_samples: int,
    ks: Sequence[int] = (1, 4, 8),
    wall_s: float = 0.0,
) -> EvalReport:
    """Metrics of already rolled-out and rewarded groups (one per task, in task order).

    pass@k is reported for each k in ``ks`` with k <= ``n_samples``; maj@k for k = ``n_samples``.
    """
    if len(groups) != len(tasks):
        raise ValueError(f"got {len(groups)} trajectory groups for {len(tasks)} tasks")
    ks = _eval_ks(ks, n_samples)
    per_task: list[TaskEval] = []
    scored: list[Trajectory] = []
    scores: list[float] = []
    for task, group in zip(tasks, groups):
        live = [t for t in group if t.stop_reason is not StopReason.ERROR]
        task_scores = [_score(task, t) for t in live]
        correct = sum(1 for s in task_scores if s >= 1.0)
        majority = majority_answer([t.answer for t in live], same_fn(task.verifier))
        maj_ok = majority is not None and score_answer(task, majority) >= 1.0
        per_task.append(TaskEval(task.id, len(live), correct, majority, maj_ok, len(group) - len(live)))
        scored += live
        scores += task_scores

    pass_k: dict[int, float] = {}
    pass_k_tasks: dict[int, int] = {}
    for k in ks:
        values = [pass_at_k(t.n, t.correct, k) for t in per_task if t.n >= k]
        pass_k[k] = sum(values) / len(values) if values else 0.0
        pass_k_tasks[k] = len(values)
    voted = [t for t in per_task if t.n > 0]
    maj = {n_samples: sum(t.majority_correct for t in voted) / len(voted) if voted else 0.0}

    n = max(len(scored), 1)
    binary = [1.0 if s >= 1.0 else 0.0 for s in scores]
    calls = [s for t in scored for s in t.steps if s.call is not None]
    answered = [s for s in calls if s.observation is not None]
    failed_calls = [sum(1 for s in t.steps if s.call is not None and failed_call(s.observation)) for t in scored]
    tool_tokens = [t.metrics.get("tool_tokens", 0.0) for t in scored]
    by_tool = Counter(s.call.name for s in calls)
    hits: list[bool] = []  # per search call of a task with a plan (lookup): did it find a needed article?
    for task, group in zip(tasks, groups):
        if task.meta.get("hops"):
            live = [t for t in group if t.stop_reason is not StopReason.ERROR]
            hits += [found_needed(task, s.observation) for t in live for s in t.steps if s.call is not None and s.call.name == "search"]
    all_trajs = [t for g in groups for t in g]
    return EvalReport(
        n_tasks=len(tasks),
        n_samples=n_samples,
        n_trajectories=len(all_trajs),
        accuracy=sum(binary) / n,
        mean_score=sum(scores) / n,
        mean_reward=sum(t.reward for t in scored) / n,
        pass_at_k=pass_k,
        pass_at_k_tasks=pass_k_tasks,
        maj_at_k=maj,
        format_ok=sum(1 for t in scored if not protocol.format_error(t.text)) / n,
        tool_calls_per_task=len(calls) / n,
        tool_calls_by_tool={name: c / n for name, c in sorted(by_tool.items())},
        search_hit_rate=sum(hits) / len(hits) if hits else None,
        tool_use_rate=sum(1 for t in scored if t.n_tool_calls > 0) / n,
        tool_success_rate=sum(1 for s in answered if s.observation.ok) / len(answered) if answered else None,
        mean_turns=sum(len(t.steps) for t in scored) / n,
        void_turn_rate=sum(1 for t in scored if t.stop_reason is StopReason.VOID_TURN) / n,
        mean_policy_tokens=sum(t.n_policy_tokens for t in scored) / n,
        mean_tool_tokens=sum(tool_tokens) / n,
        efficiency=efficiency(scores, [t.n_tool_calls for t in scored]),
        successful_execution=successful_execution(scores, failed_calls),
        reasoning_length=1000.0 * reasoning_length(scores, [t.n_policy_tokens for t in scored]),
        stop_reasons=dict(Counter(t.stop_reason.value if t.stop_reason else "none" for t in all_trajs)),
        infra_errors=len(all_trajs) - len(scored),
        wall_s=wall_s,
        per_task=per_task,
        groups=groups,
    )


async def evaluate_async(
    engine: Engine,
    protocol: Protocol,
    tasks: Sequence[Task],
    n_samples: int,
    rollout_cfg: RolloutConfig | None = None,
    ks: Sequence[int] = (1, 4, 8),
    rewards: list[RewardSpec] | None = None,
    on_finished: Callable[[int], None] | None = None,
    judge: ChatModel | None = None,
) -> EvalReport:
    """``evaluate`` for callers already inside an event loop; ``judge`` adds Conciseness."""
    _eval_ks(ks, n_samples)  # fail before sampling, not after
    cfg = (rollout_cfg or RolloutConfig()).model_copy(update={"group_size": n_samples})
    t0 = time.perf_counter()
    groups = await rollout(engine, protocol, tasks, cfg, on_finished=on_finished)
    wall = time.perf_counter() - t0
    apply_rewards(list(zip(tasks, groups)), rewards if rewards is not None else default_rewards(protocol))
    report = summarize_eval(tasks, groups, protocol, n_samples, ks, wall)
    if judge is not None:
        add_conciseness(report, tasks, judge)
    return report


def add_conciseness(report: EvalReport, tasks: Sequence[Task], judge: ChatModel) -> None:
    """Judge every scored trajectory of ``report`` for redundant tool calls (ET-Agent App. E.1)."""
    from tirl.judge.roles import judge_conciseness

    pairs = [(task, t) for task, g in zip(tasks, report.groups) for t in g if t.stop_reason is not StopReason.ERROR]
    verdicts = judge_conciseness(judge, [p[0] for p in pairs], [p[1] for p in pairs])
    report.conciseness = conciseness(verdicts)
    report.conciseness_unread = sum(1 for v in verdicts if v is None)


def evaluate(
    engine: Engine,
    protocol: Protocol,
    tasks: Sequence[Task],
    n_samples: int,
    rollout_cfg: RolloutConfig | None = None,
    ks: Sequence[int] = (1, 4, 8),
    rewards: list[RewardSpec] | None = None,
    on_finished: Callable[[int], None] | None = None,
) -> EvalReport:
    """Roll out ``n_samples`` trajectories per task (``rollout_cfg`` with its group size replaced),
    score them with ``rewards`` (default: ``tirl.rewards.presets.default_rewards(protocol)``) and compute the metrics.

    Runs its own event loop (``asyncio.run``); inside a running loop use ``evaluate_async``.
    """
    return asyncio.run(evaluate_async(engine, protocol, tasks, n_samples, rollout_cfg, ks, rewards, on_finished))
