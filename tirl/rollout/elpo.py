"""ELPO's Binary-search Error Localisation (BEL) tree rollout (arXiv 2602.09598, Alg. 1;
ALGORITHMS.md §4 steps 1-4).

Per task, a budget of ``N_total`` trajectories (continuations included):

1. Sample full trajectories until ``B_max`` failures are buffered (or the budget ends); the
   successes sampled on the way stay as leaves under the root.
2. Take the buffered failure with the largest ``H_tool - H_root`` (mean token entropy of the
   segments generated after tool feedback minus that of the first assistant turn) as the
   reference path; empty the buffer.
3. Binary search over its K tool-call steps: ``L = 1, R = K``; while ``L < R`` and budget
   remains, ``m = (L + R) // 2`` and sample
   ``X_m = round(X_min + (X_max - X_min) * sigmoid(beta * (H_tool_m - H_root)))`` continuations
   from the prefix that ends after step m's tool output (``H_tool_m``: mean token entropy of the
   segment generated right after that output); if any succeeds ``L = m + 1`` else ``R = m``.
   The critical step is ``t_crit = L``.
4. Repeat while budget remains.

"Success" is a binary predicate, the verifier's score being 1 (``tirl.rewards.verify``), separate
from the shaped reward the trainer applies afterwards. Entropies are in nats over the full
vocabulary, as the engine reports them. Choices the paper leaves open, made here: ``round``
rounds half up; a failure without tool calls (K = 0) has ``H_tool = H_root`` and ``t_crit = 1``
(its whole path is the critical suffix); a search cut short by the budget keeps its current
``L`` as the estimate; infrastructure failures are neither successes nor failures (they are
dropped from the tree). Trajectories of all tasks in a batch run together: each task's search is
a generator that yields the rollouts it needs next, and every round of requests from all tasks
goes through the agent loop at once.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import NamedTuple

from tirl.config.strategy import ELPOConfig
from tirl.engine.base import Engine
from tirl.protocol.base import Protocol
from tirl.rewards.verify import score_answer
from tirl.rollout.agent_loop import RolloutConfig, continue_states, prefix_trajectory, run_states, start_states
from tirl.rollout.tree import Branch, build_tree
from tirl.types import CriticalStep, Origin, RolloutTree, StopReason, Task, Trajectory


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _policy_entropies(traj: Trajectory) -> list[list[float]]:
    """Per-token entropies of each assistant turn, in order (a turn without them counts as empty)."""
    return [list(traj.segments[s.action_segment].entropy or []) for s in traj.steps if traj.segments[s.action_segment].origin is Origin.POLICY]


def entropy_gap(traj: Trajectory) -> tuple[float, float, list[float]]:
    """(H_root, H_tool, [H_tool_m for m = 1..K]): mean token entropies of the first turn, of all
    turns after tool feedback (pooled over tokens), and of the turn right after the m-th tool
    output. Without tool feedback H_tool = H_root."""
    turns = _policy_entropies(traj)
    if not turns:
        return 0.0, 0.0, []
    h_root = _mean(turns[0])
    after = [t for turn in turns[1:] for t in turn]
    h_tool = _mean(after) if after else h_root
    k = sum(1 for s in traj.steps if s.call is not None)
    per_step = [_mean(turns[m]) if m < len(turns) else h_root for m in range(1, k + 1)]
    return h_root, h_tool, per_step


def n_continuations(h_tool_m: float, h_root: float, cfg: ELPOConfig) -> int:
    """X_m = round(X_min + (X_max - X_min) * sigmoid(beta * (H_tool_m - H_root))), half up."""
    z = cfg.beta * (h_tool_m - h_root)
    sig = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return int(math.floor(cfg.x_min + (cfg.x_max - cfg.x_min) * sig + 0.5))


Request = tuple[int | None, int]
"""(parent record, steps kept): a fresh sample (None, 0) or a continuation of a recorded trajectory."""


class Search(NamedTuple):
    """One binary search's result, before the tree (and so the reference's leaf id) exists."""

    sample: int  # the reference failure
    t_crit: int
    k: int


def bel_search(
    records: list[Branch], success: list[bool | None], cfg: ELPOConfig, critical: list[Search]
) -> Generator[list[Request], list[int], None]:
    """Alg. 1 for one task. Yields the rollouts it wants next; is sent the indices of the
    records that hold them once they are finished and scored (``success[i]`` is True, False, or
    None for an infrastructure failure). Appends a ``Search`` per search to ``critical``."""
    used = 0
    while used < cfg.budget:
        failures: list[int] = []
        while len(failures) < cfg.buffer and used < cfg.budget:  # step 1
            n = min(cfg.buffer - len(failures), cfg.budget - used)
            got = yield [(None, 0)] * n
            used += n
            failures += [i for i in got if success[i] is False]
        if not failures:
            break

        def gap(i: int) -> float:
            h_root, h_tool, _ = entropy_gap(records[i].traj)
            return h_tool - h_root

        ref = max(failures, key=gap)  # step 2 (ties: the earliest)
        traj = records[ref].traj
        h_root, _, h_step = entropy_gap(traj)
        k = len(h_step)
        lo, hi = 1, max(k, 1)
        while lo < hi and used < cfg.budget:  # step 3
            m = (lo + hi) // 2
            x = min(n_continuations(h_step[m - 1], h_root, cfg), cfg.budget - used)
            got = yield [(ref, m)] * x
            used += x
            if any(success[i] for i in got):
                lo = m + 1
            else:
                hi = m
        critical.append(Search(traj.sample, lo, k))


async def bel_rollout(engine: Engine, protocol: Protocol, tasks: Sequence[Task], rcfg: RolloutConfig, cfg: ELPOConfig) -> list[RolloutTree]:
    """One BEL tree per task (see the module docstring)."""
    tok = engine.tokenizer
    records: list[list[Branch]] = [[] for _ in tasks]
    success: list[list[bool | None]] = [[] for _ in tasks]
    critical: list[list[Search]] = [[] for _ in tasks]
    searches = [bel_search(records[i], success[i], cfg, critical[i]) for i in range(len(tasks))]
    pending: dict[int, list[Request]] = {}
    for i, s in enumerate(searches):
        try:
            pending[i] = next(s)
        except StopIteration:
            pass
    rounds = 0
    while pending:
        fresh, prefixes, owners = [], [], []
        for i, reqs in pending.items():
            for parent, n_steps in reqs:
                sample = len(records[i])
                if parent is None:
                    st = start_states(protocol, tok, [tasks[i]], 1, first_sample=sample)[0]
                    records[i].append(Branch(st.traj))
                    fresh.append(st)
                else:
                    tr = prefix_trajectory(records[i][parent].traj, n_steps, sample=sample)
                    records[i].append(Branch(tr, parent, n_steps))
                    prefixes.append(tr)
                success[i].append(None)
                owners.append((i, sample))
        states = fresh + await continue_states(protocol, tok, prefixes)
        await run_states(engine, protocol, states, rcfg)
        rounds += 1
        for i, sample in owners:
            tr = records[i][sample].traj
            success[i][sample] = None if tr.stop_reason is StopReason.ERROR else score_answer(tasks[i], tr.answer) >= 1.0
        nxt: dict[int, list[Request]] = {}
        for i in pending:
            got = [sample for j, sample in owners if j == i]
            try:
                nxt[i] = searches[i].send(got)
            except StopIteration:
                pass
        pending = nxt
    trees = []
    for i, task in enumerate(tasks):
        tree = build_tree(task.id, records[i], strategy="elpo", meta={"rounds": rounds})
        for leaf in tree.leaves():
            leaf.success = bool(success[i][leaf.sample])
        for c in critical[i]:
            leaf = tree.leaf_for_sample(c.sample)
            if leaf is not None:  # always: a reference is a scored failure, never dropped
                tree.critical.append(CriticalStep(leaf.id, c.t_crit, c.k, c.sample))
        trees.append(tree)
    return trees
