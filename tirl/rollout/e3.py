"""E3-TIR's expert-anchored rollout (ALGORITHMS.md §5; Guo et al. 2026, arXiv 2604.09455 — a
reconstruction, the paper's full text was not available; every choice is an ``E3Config`` field).

Per task and warm-up step, a budget of ``B = rollout.group_size`` policy trajectories:

1. **Self-exploration**: ``B - anchors * branches`` samples from the prompt. Their pass rate
   decides whether the task gets expert experience this step: only while it is below
   ``pass_rate_threshold``, and then with probability ``share`` (the expert share, decaying
   linearly over the warm-up, ``tirl.algo.mixed.expert_share``).
2. For a task that gets it, the expert trajectory ``e`` (``tirl.rollout.experts``) is
   teacher-forced through the current policy (the trainer does this: it owns the model). Its
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

The tree (``tirl.rollout.tree.RolloutTree``) records each leaf's ``role`` (``self``, ``expert``,
``anchor``) and anchor (``anchor_step``: steps of ``e`` kept) in ``info``; ``meta['rollouts']``
counts the policy's samples only (the expert's trajectory is not a rollout).
"""

from __future__ import annotations

from typing import Sequence

from tirl.config.strategy import E3Config  # noqa: F401 - re-exported; the section lives in tirl.config
from tirl.types import Trajectory


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
