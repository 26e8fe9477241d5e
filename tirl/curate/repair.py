"""AutoTraj trajectory repair (Gong et al. 2026, arXiv 2601.23032; ALGORITHMS.md §7).

Per task, the policy's trajectories are split: correct ones are scored for quality
(``tirl.curate.quality``) and triaged (keep all / keep the best / repair), wrong ones always go
to the repairer. The repairer is a chat model through the Engine interface, given the question
**and the low-quality trajectory** (the released scripts pass only the question, which turns
repair into a constrained regeneration -- a bug, docs/ALGORITHMS.md §7). It writes a new trajectory
through tirl's agent loop, so every tool call it makes is executed for real by tirl's tools and
the observations in the result are genuine. A repair is accepted when its answer is correct, its
format valid, and its quality score >= 0.86 (the original was correct) or >= 0.80 (it was
wrong); l* for the length term is the shortest of the task's correct originals and the repair.

The repairer may also be an expert source (``tirl.rollout.experts``) that writes a trajectory
for the task without reading the bad one: ``arith-reference`` (the task's reference solver, an
oracle repairer for measuring the rest of the pipeline when no model stronger than the policy is
at hand) or a JSONL of better trajectories. Its output passes the same acceptance rule.

Outputs: the SFT set (kept originals and accepted repairs, moved onto the task's own prompt)
and preference pairs (repaired ≻ original) for the trajectory reward model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

from tirl.curate.quality import accept_repair, quality_score, quality_scores, triage, word_count
from tirl.curate.rebase import model_text, rebase
from tirl.engine.base import Engine
from tirl.judge.llm import render_prompt
from tirl.judge.roles import task_question
from tirl.protocol.base import Protocol
from tirl.rewards.verify import score_answer
from tirl.rm.pairs import PreferencePair
from tirl.rollout.agent_loop import RolloutConfig, rollout
from tirl.rollout.experts import ExpertSource
from tirl.types import StopReason, Task, Trajectory


@dataclass
class RepairOutcome:
    """One repair attempt: the original, the repairer's trajectory (on the task prompt), scores."""

    task_id: str
    original_correct: bool
    original_score: float | None
    repaired: Trajectory
    correct: bool
    score: float
    accepted: bool


@dataclass
class RepairResult:
    sft: list[Trajectory] = field(default_factory=list)
    pairs: list[PreferencePair] = field(default_factory=list)
    outcomes: list[RepairOutcome] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def is_correct(task: Task, traj: Trajectory, protocol: Protocol) -> bool:
    return traj.stop_reason is not StopReason.ERROR and protocol.format_error(traj.text) is None and score_answer(task, traj.answer) >= 1.0


def _repair_task(task: Task, bad: Trajectory, correct: bool, max_calls: int, k: int) -> Task:
    prompt = render_prompt(
        "repair_correct" if correct else "repair_wrong", question=task_question(task), trajectory=bad.text.strip(), max_calls=str(max_calls)
    )
    return Task(id=f"{task.id}/repair{k}", prompt=prompt, answer=task.answer, meta=dict(task.meta))


async def repair_groups(
    tasks: Sequence[Task],
    groups: Sequence[Sequence[Trajectory]],
    protocol: Protocol,
    tokenizer,
    repairer: Engine | ExpertSource,
    cfg,
    max_response_tokens: int = 1024,
    max_turn_tokens: int = 512,
) -> RepairResult:
    """AutoTraj's SFT-data pipeline over rolled-out groups (``cfg`` is the ``repair`` section).
    ``tokenizer`` is the policy's: kept and repaired trajectories are rendered on its prompt."""
    res = RepairResult()
    counts = {
        "tasks": len(tasks),
        "trajectories": 0,
        "infra_dropped": 0,
        "correct": 0,
        "kept": 0,
        "to_repair_correct": 0,
        "to_repair_wrong": 0,
        "accepted": 0,
        "hard_cases": 0,
    }
    jobs: list[tuple[Task, Trajectory, bool, float | None, list[int]]] = []  # task, original, correct?, score, correct lengths
    for task, group in zip(tasks, groups):
        live = [t for t in group if t.stop_reason is not StopReason.ERROR]
        counts["trajectories"] += len(live)
        counts["infra_dropped"] += len(group) - len(live)
        good = [t for t in live if is_correct(task, t, protocol)]
        bad = [t for t in live if not is_correct(task, t, protocol)]
        counts["correct"] += len(good)
        texts = [model_text(t, tokenizer) for t in good]
        scores = quality_scores(texts)
        lengths = [word_count(x) for x in texts]
        tri = triage(scores, cfg.keep_all, cfg.keep_best)
        for i in tri.keep:
            t = good[i]
            t.rewards = {**t.rewards, "correct": 1.0, "quality": scores[i]}
            res.sft.append(t)
        counts["kept"] += len(tri.keep)
        counts["to_repair_correct"] += len(tri.repair)
        counts["to_repair_wrong"] += len(bad)
        jobs += [(task, good[i], True, scores[i], lengths) for i in tri.repair]
        jobs += [(task, t, False, None, lengths) for t in bad]
    if jobs:
        repaired = await _repairs(jobs, protocol, tokenizer, repairer, cfg, max_response_tokens, max_turn_tokens)
        for (task, orig, orig_ok, orig_score, lengths), new in zip(jobs, repaired):
            if new is None:
                counts["infra_dropped"] += 1
                continue
            ok = is_correct(task, new, protocol)
            text = model_text(new, tokenizer)
            score = quality_score(text, min(lengths + [word_count(text)]))
            accepted = accept_repair(ok, score, orig_ok, cfg.accept_correct, cfg.accept_wrong)
            res.outcomes.append(RepairOutcome(task.id, orig_ok, orig_score, new, ok, score, accepted))
            if accepted:
                new.rewards = {"correct": 1.0, "quality": score}
                res.sft.append(new)
                res.pairs.append(PreferencePair(task_question(task), new.text, orig.text, task.id))
                counts["accepted"] += 1
            else:
                counts["hard_cases"] += 1
    res.counts = counts
    return res


async def _repairs(
    jobs, protocol: Protocol, tokenizer, repairer: Engine | ExpertSource, cfg, max_response_tokens: int, max_turn_tokens: int
) -> list[Trajectory | None]:
    """One repaired trajectory per job, on the task's own prompt in the policy's tokens (None: the
    repairer's run stopped on an infrastructure error)."""
    if not isinstance(repairer, Engine):  # an expert source writes a solution of the task itself
        sols = await repairer.solve([task for task, *_ in jobs], protocol, tokenizer)
        out: list[Trajectory | None] = []
        for (_task, orig, *_), sol in zip(jobs, sols):
            if sol is not None:
                sol = copy.deepcopy(sol)
                sol.sample, sol.rewards = orig.sample, {}
            out.append(sol)
        return out
    rtasks = [_repair_task(task, t, ok, cfg.max_tool_calls, k) for k, (task, t, ok, _, _) in enumerate(jobs)]
    rcfg = RolloutConfig(
        group_size=1,
        max_tool_calls=cfg.max_tool_calls,
        temperature=cfg.temperature,
        max_response_tokens=max_response_tokens,
        max_turn_tokens=max_turn_tokens,
    )
    groups = await rollout(repairer, protocol, rtasks, rcfg)
    return [
        None
        if rep.stop_reason is StopReason.ERROR
        else rebase(rep, task, protocol, tokenizer, source_tokenizer=repairer.tokenizer, sample=orig.sample)
        for (task, orig, *_), (rep,) in zip(jobs, groups)
    ]


def make_repairer(spec: str | None, policy_engine: Engine, seed: int = 0, endpoints=None) -> Engine | ExpertSource:
    """The repairer a config names: ``reference`` (``arith-reference``) or a ``.jsonl`` (an expert source that
    writes the task's solution), else a judge-style model (``tirl.judge.llm.make_engine``: the
    policy, ``openai:<endpoint>`` or a local model) that reads the question and the bad trajectory."""
    from tirl.judge.llm import make_engine
    from tirl.rollout.experts import make_expert_source
    from tirl.tasks.reference import is_reference

    if spec is not None and (is_reference(spec) or spec.endswith(".jsonl")):
        return make_expert_source(spec, rollout=RolloutConfig())
    return make_engine(spec, policy_engine, seed=seed, endpoints=endpoints)
