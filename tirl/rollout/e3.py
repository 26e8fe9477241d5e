"""E3-TIR's expert-anchored rollout (ALGORITHMS.md §5; Guo et al. 2026, arXiv 2604.09455 — a
reconstruction, the paper's full text was not available; every choice is an ``E3Config`` field).

Per task and warm-up step, a budget of ``B = rollout.group_size`` policy trajectories:

1. **Self-exploration**: ``B - anchors * branches`` samples from the prompt. Their pass rate
   decides whether the task gets expert experience this step: only while it is below
   ``pass_rate_threshold``, and then with probability ``share`` (the expert share, decaying
   linearly over the warm-up, ``tirl.algo.mixed.expert_share``).
2. For a task that gets it, the expert trajectory ``e`` (the run's ``ExpertSet``,
   ``tirl.rollout.expert_set``) is teacher-forced through the current policy (an
   ``EntropyScorer``: the trainer supplies one, it owns the model). Its
   **anchor candidates** are the step boundaries where the model would generate again: the
   start of each step that follows a tool result (``</result>``). Each is scored by the policy's
   mean entropy over the first ``entropy_window`` tokens of that step (1: the entropy exactly at
   the boundary), and the ``anchors`` highest are kept (``choose_anchors``).
3. **Expert prefixes**: ``anchors * branches`` policy continuations, spread over the chosen
   anchors (higher entropy first when they do not divide evenly), each continuing ``e`` cut
   after the anchor's tool result (``prefix_trajectory``: the prefix stays EXPERT). A task
   without expert experience gets that many further self-exploration samples instead, so every
   task costs the same ``B`` rollouts.
4. **Expert-guided**: ``e`` itself is a leaf of the tree (it is also the continuations' parent);
   the credit gives it its own off-policy term (or leaves it out, ``expert_guided=False``).

With ``branching=False`` (the ablation without branching) step 3 is skipped: all ``B``
samples are self-exploration and only the expert-guided sample brings expert experience.

``e3_rollout`` samples one tree per task (``tirl.types.RolloutTree``); each leaf records its
``role`` (``LeafRole``: self, expert, anchor) and an anchor continuation its ``anchor_step``
(steps of ``e`` kept); ``rollouts`` counts the policy's samples only (the expert's trajectory is
not a rollout). All tasks of a batch run together: first every task's self-exploration, then
every task's continuations and top-up samples.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from tirl.config.strategy import E3Config  # noqa: F401 - re-exported; the section lives in tirl.config
from tirl.engine.base import Engine
from tirl.protocol.base import Protocol as ToolProtocol
from tirl.rollout.agent_loop import RolloutConfig, continue_states, prefix_trajectory, run_states, start_states
from tirl.rollout.experts import correct
from tirl.rollout.tree import Branch, build_tree
from tirl.types import LeafRole, RolloutTree, StopReason, Task, Trajectory


def anchor_candidates(traj: Trajectory) -> list[tuple[int, int]]:
    """``(n_steps, start)`` per step boundary the model could continue from: after a step whose
    tool answered, when another step follows. ``n_steps`` is how many steps the prefix keeps,
    ``start`` the token index (in ``traj.token_ids``) of the next step's first token."""
    offsets = []
    pos = len(traj.prompt_token_ids)
    for seg in traj.segments:
        offsets.append(pos)
        pos += len(seg)
    out = []
    for i, step in enumerate(traj.steps[:-1]):
        if step.tool_segment is not None:
            out.append((i + 1, offsets[traj.steps[i + 1].action_segment]))
    return out


def boundary_scores(entropy_T: Sequence[float], starts: Sequence[int], window: int, end: int) -> list[float]:
    """Mean of ``entropy_T`` over ``[start, min(start + window, end))`` for each start."""
    if window < 1:
        raise ValueError(f"entropy window must be >= 1, got {window}")
    out = []
    for s in starts:
        span = list(entropy_T[s : min(s + window, end)])
        if not span:
            raise ValueError(f"anchor at token {s} has no tokens to score (sequence ends at {end})")
        out.append(sum(span) / len(span))
    return out


def choose_anchors(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` highest scores, highest first (ties: the earlier boundary)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return order[:k]


def spread(n: int, k: int) -> list[int]:
    """``n`` continuations over ``k`` anchors (in priority order): as even as possible, the
    first anchors taking the remainder. ``spread(5, 2) = [3, 2]``."""
    if k < 1:
        raise ValueError(f"cannot spread over {k} anchors")
    return [n // k + (1 if j < n % k else 0) for j in range(k)]


class EntropyScorer(Protocol):
    """Teacher forcing through the current policy (``tirl.train.scoring.TeacherForcingScorer``)."""

    def entropies(self, seqs: Sequence[Sequence[int]], starts: Sequence[Sequence[int]]) -> list[list[float]]:
        """Per sequence, the policy's per-token entropies (index t: the distribution that predicts
        token t); the positions in its ``starts`` and after them are scored, an empty list when a
        sequence has none."""
        ...


ExpertLookup = Callable[[Sequence[Task]], Awaitable[Mapping[str, Trajectory | None]]]
"""Each task's expert trajectory, or None (``ExpertSet.get`` bound to the run)."""


def anchor_scores(experts: Sequence[Trajectory], scorer: EntropyScorer, window: int) -> list[list[tuple[int, float]]]:
    """Per expert trajectory, ``(n_steps, entropy score)`` for each candidate boundary."""
    cands = [anchor_candidates(tr) for tr in experts]
    ents = scorer.entropies([tr.token_ids for tr in experts], [[s for _, s in c] for c in cands])
    out = []
    for tr, c, ent in zip(experts, cands, ents):
        scores = boundary_scores(ent, [s for _, s in c], window, len(tr.token_ids))
        out.append([(n, sc) for (n, _), sc in zip(c, scores)])
    return out


def _prefix_lengths(traj: Trajectory) -> dict[int, int]:
    """Completion tokens of the prefix that keeps n steps, for each candidate n."""
    out = {}
    for n, _ in anchor_candidates(traj):
        last = traj.steps[n - 1].tool_segment
        out[n] = sum(len(s) for s in traj.segments[: last + 1])
    return out


async def e3_rollout(
    engine: Engine,
    protocol: ToolProtocol,
    tasks: Sequence[Task],
    rcfg: RolloutConfig,
    cfg: E3Config,
    share: float,
    rng: random.Random,
    experts: ExpertLookup,
    scorer: EntropyScorer,
) -> tuple[list[RolloutTree], dict[str, float]]:
    """One warm-up tree per task (the module docstring) and the step's ``e3/*`` metrics.
    ``share`` is this step's expert share; ``rng`` draws whether an eligible task gets expert
    experience (one draw per task, whatever happens, so a resumed run draws the same)."""
    tok = engine.tokenizer
    B = rcfg.group_size
    n_cont = cfg.anchors * cfg.branches if cfg.branching else 0
    n_self = B - n_cont

    # 1. self-exploration; its pass rate gates expert use
    first = start_states(protocol, tok, tasks, n_self)
    await run_states(engine, protocol, first, rcfg)
    groups = [[st.traj for st in first[i * n_self : (i + 1) * n_self]] for i in range(len(tasks))]
    pass_rate = []
    for task, g in zip(tasks, groups):
        live = [t for t in g if t.stop_reason is not StopReason.ERROR]
        pass_rate.append(sum(correct(task, t) for t in live) / len(live) if live else 0.0)
    draws = [rng.random() for _ in tasks]
    eligible = [pr < cfg.pass_rate_threshold and u < share for pr, u in zip(pass_rate, draws)]
    expert_of = await experts([t for t, ok in zip(tasks, eligible) if ok])

    # 2. anchors on the experts, scored by the current policy
    use = [ok and expert_of.get(t.id) is not None for t, ok in zip(tasks, eligible)]
    room = rcfg.max_response_tokens - 1  # a prefix must leave the policy a token to write
    plans: dict[int, list[tuple[int, int, float]]] = {}
    if n_cont:
        idx = [i for i, u in enumerate(use) if u]
        scored = anchor_scores([expert_of[tasks[i].id] for i in idx], scorer, cfg.entropy_window)
        for i, cands in zip(idx, scored):
            lens = _prefix_lengths(expert_of[tasks[i].id])
            cands = [(n, s) for n, s in cands if lens[n] <= room]
            if not cands:
                continue
            chosen = choose_anchors([s for _, s in cands], cfg.anchors)
            plans[i] = [(cands[j][0], cnt, cands[j][1]) for j, cnt in zip(chosen, spread(n_cont, len(chosen)))]

    # 3. continuations from the anchors, or more self-exploration
    records: list[list[Branch]] = []
    fresh, prefixes = [], []
    for i, task in enumerate(tasks):
        rec = [Branch(t, role=LeafRole.SELF) for t in groups[i]]
        extra = n_cont
        if use[i]:
            ex = copy.deepcopy(expert_of[task.id])
            ex.sample = len(rec)
            ex.gold = task.answer
            parent = len(rec)
            rec.append(Branch(ex, role=LeafRole.EXPERT))
            for n_steps, cnt, _ in plans.get(i, []):
                for _ in range(cnt):
                    tr = prefix_trajectory(ex, n_steps, sample=len(rec))
                    rec.append(Branch(tr, parent, n_steps, role=LeafRole.ANCHOR, anchor_step=n_steps))
                    prefixes.append(tr)
                    extra -= 1
        for st in start_states(protocol, tok, [task], extra, first_sample=len(rec)) if extra else []:
            rec.append(Branch(st.traj, role=LeafRole.SELF))
            fresh.append(st)
        records.append(rec)
    second = fresh + await continue_states(protocol, tok, prefixes)
    await run_states(engine, protocol, second, rcfg)

    trees = []
    for i, task in enumerate(tasks):
        meta = {
            "share": share,
            "pass_rate": pass_rate[i],
            "expert": bool(use[i]),
            "anchors": [{"n_steps": n, "continuations": c, "entropy": round(s, 6)} for n, c, s in plans.get(i, [])],
        }
        rollouts = sum(1 for b in records[i] if b.role is not LeafRole.EXPERT)
        trees.append(build_tree(task.id, records[i], strategy="e3", rollouts=rollouts, meta=meta))
    n = len(tasks)
    metrics = {
        "e3/phase": 1.0,
        "e3/share": share,
        "e3/self_pass_rate": sum(pass_rate) / n if n else 0.0,
        "e3/tasks_eligible": sum(eligible) / n if n else 0.0,
        "e3/tasks_with_expert": sum(use) / n if n else 0.0,
        "e3/anchors_per_task": sum(len(plans.get(i, [])) for i in range(n)) / n if n else 0.0,
    }
    depths = [a for p in plans.values() for a, _, _ in p]
    if depths:
        metrics["e3/anchor_step"] = sum(depths) / len(depths)
    anchored = [leaf for t in trees for leaf in t.leaves() if leaf.role is LeafRole.ANCHOR]
    if anchored:
        by_task = {t.id: t for t in tasks}
        metrics["e3/anchor_success"] = sum(correct(by_task[leaf.trajectory.task_id], leaf.trajectory) for leaf in anchored) / len(anchored)
    return trees, metrics
