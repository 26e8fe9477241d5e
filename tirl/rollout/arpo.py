"""ARPO's entropy-adaptive branching rollout (Dong et al., arXiv 2507.19849; ALGORITHMS.md §3).

Per task, a budget of ``M`` trajectories; ``N`` start from the prompt. All tasks of a batch
advance together, one agent-loop round at a time (``tirl.rollout.agent_loop.advance``). After
a round, every path still running has just ended a segment with a tool call and received the
tool's observation. For that segment:

    H  = sum of the per-token entropies of its first <= 20 tokens / ln |V|

(ARPO's scale: the reference code sums -p log p over the top-10 log-probs of each of those
tokens and divides by log |V|; tirl's engines report the full distribution's entropy, which
that top-k sum approximates.) ``H_init`` is the path's first-segment entropy; a branch
inherits its parent's (same path up to the fork). The entropies live in this call only: the
reference code keeps them in a dict that outlives the batch, so from the second step its
``H_init`` is stale (a bug, not reproduced). With ``dH = H - H_init`` each running path spawns
one branch with probability ``clip(0.5 + 0.2 dH, 0, 1)`` while the task has budget left; the
reference code draws ``u ~ U(0, 1)`` and branches iff ``clip(u - 0.2 dH, 0, 1) <= 0.5``, the
same event. A branch is a copy of the path's context including the new observation (its tool
session is rebuilt by replaying the path's calls) and diverges at the next segment. When all of
a task's paths have ended before its budget is used, one fresh sample from the prompt is added
per round (as in the reference code; ``topup_per_round`` adds more at once) until it is; a
sample is never duplicated to pad the group (the reference code duplicates the last one when
short, which biases GRPO statistics).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from tirl.config.strategy import ARPOConfig
from tirl.engine.base import Engine
from tirl.protocol.base import Protocol
from tirl.rollout.agent_loop import LoopState, RolloutConfig, advance, close_sessions, continue_states, finalize, prefix_trajectory, start_states
from tirl.rollout.tree import Branch, build_tree
from tirl.types import RolloutTree, Segment, Task


def vocab_size(tokenizer) -> int:
    return len(tokenizer)


def segment_entropy(seg: Segment, n_tokens: int, log_vocab: float) -> float:
    """ARPO's segment entropy: the sum of the first ``n_tokens`` per-token entropies / ln |V|."""
    if seg.entropy is None:
        raise ValueError("ARPO branching needs per-token entropies; the engine returned none for a segment")
    return sum(seg.entropy[:n_tokens]) / log_vocab


def branch_probability(dH: float, base: float = 0.5, weight: float = 0.2) -> float:
    """clip(base + weight * dH, 0, 1)."""
    return min(1.0, max(0.0, base + weight * dH))


@dataclass
class _Path:
    state: LoopState
    task: int  # index into tasks
    record: int  # index into the task's branch records
    h_init: float | None = None


async def arpo_rollout(
    engine: Engine,
    protocol: Protocol,
    tasks: Sequence[Task],
    rcfg: RolloutConfig,
    acfg: ARPOConfig,
    rng: random.Random,
) -> list[RolloutTree]:
    """One tree per task (see the module docstring). ``rng`` draws the branching decisions."""
    tok = engine.tokenizer
    log_v = math.log(vocab_size(tok))
    records: list[list[Branch]] = [[] for _ in tasks]
    paths: list[_Path] = []

    def add_fresh(ti: int, n: int) -> None:
        for st in start_states(protocol, tok, [tasks[ti]], n, first_sample=len(records[ti])):
            paths.append(_Path(st, ti, len(records[ti])))
            records[ti].append(Branch(st.traj))

    for ti in range(len(tasks)):
        add_fresh(ti, acfg.initial)
    rounds = 0
    try:
        while True:
            live = [p for p in paths if not p.state.done]
            if live:
                await advance(engine, protocol, [p.state for p in live], rcfg)
                rounds += 1
            forks: list[tuple[_Path, int]] = []  # (parent, task)
            for p in live:
                traj = p.state.traj
                h = segment_entropy(traj.segments[traj.steps[-1].action_segment], acfg.entropy_tokens, log_v)
                if p.h_init is None:
                    p.h_init = h
                if p.state.done:
                    continue
                prob = branch_probability(h - p.h_init, acfg.base_prob, acfg.entropy_weight)
                for _ in range(acfg.branches_per_step):
                    if len(records[p.task]) + sum(1 for _, t in forks if t == p.task) >= acfg.budget:
                        break
                    if rng.random() < prob:
                        forks.append((p, p.task))
            prefixes, made = [], []
            for parent, ti in forks:
                n_steps = len(parent.state.traj.steps)
                prefixes.append(prefix_trajectory(parent.state.traj, n_steps, sample=len(records[ti])))
                made.append((ti, len(records[ti]), parent.h_init))
                records[ti].append(Branch(prefixes[-1], parent.record, n_steps))
            for (ti, rec, h_init), st in zip(made, await continue_states(protocol, tok, prefixes)):
                paths.append(_Path(st, ti, rec, h_init))
            # top up: a task whose paths have all ended gets fresh samples from the prompt
            for ti in range(len(tasks)):
                if len(records[ti]) < acfg.budget and not any(not p.state.done for p in paths if p.task == ti):
                    add_fresh(ti, min(acfg.topup_per_round, acfg.budget - len(records[ti])))
            if all(p.state.done for p in paths):
                break
    finally:
        await close_sessions([p.state for p in paths], protocol)
    trees = []
    for ti, task in enumerate(tasks):
        for p in paths:
            if p.task == ti:
                finalize(p.state, protocol, tok)
        n_forks = sum(1 for b in records[ti] if b.parent is not None)
        meta = {"branches": n_forks, "topups": len(records[ti]) - n_forks - acfg.initial, "rounds": rounds}
        trees.append(build_tree(task.id, records[ti], strategy="arpo", meta=meta))
    return trees
