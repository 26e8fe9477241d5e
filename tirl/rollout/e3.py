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

from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from tirl.types import Trajectory


class E3Config(BaseModel):
    """E3-TIR warm-up (the ``strategy.e3`` section; ALGORITHMS.md §5)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    expert: str = "arith-reference"
    """Expert source: arith-reference (the arith reference solver), a .jsonl of trajectories in
    the rollout schema, openai:<endpoint> (a model behind an endpoints entry), or a local model
    (alias, directory or hub id). tirl runs the expert's tool calls, so observations are real."""
    expert_temperature: float = Field(0.0, ge=0.0)
    """Sampling temperature of a model expert (0: greedy)."""
    correct_only: bool = True
    """Use only expert trajectories the verifier scores correct (the others are counted as
    spent expert samples but never used)."""
    max_expert_samples: int = Field(0, ge=0)
    """Expert trajectories the run may obtain (its expert set; each task's is obtained once and
    cached); 0: no limit. Tasks met after the limit get no expert experience."""
    warmup_steps: int = Field(10, ge=0)
    """RL steps of the warm-up; from this step on, training continues with ``after_warmup``."""
    share_start: float = Field(1.0, ge=0.0, le=1.0)
    """Expert share at the first step: the probability that an eligible task gets expert experience."""
    share_schedule: Literal["linear", "constant"] = "linear"
    """How the share changes over the warm-up: linear decay to 0 at warmup_steps, or constant."""
    pass_rate_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """A task is eligible for expert experience while its self-exploration pass rate this step
    is below this."""
    anchors: int = Field(2, ge=1)
    """k: anchor steps per expert trajectory (fewer when it has fewer candidate boundaries)."""
    branches: int = Field(2, ge=1)
    """b: policy continuations per anchor; anchors * branches of the budget go to continuations."""
    entropy_window: int = Field(1, ge=1)
    """Tokens at the start of a step whose policy entropies (mean) score its boundary as an anchor."""
    branching: bool = True
    """Sample continuations from expert anchors; False is the ablation without branching."""
    expert_guided: bool = True
    """Train the full expert trajectory with the off-policy term (and count it in A_global)."""
    alpha: float = Field(0.5, ge=0.0, le=1.0)
    """Hybrid advantage weight: A = alpha * A_global + (1 - alpha) * A_tree."""
    singleton_tree: Literal["global", "zero"] = "global"
    """A_tree of a sample alone in its sub-tree (the expert-guided sample): its A_global, or 0."""
    aagd: Literal["sign", "always", "never"] = "sign"
    """Advantage-aware gradient detaching of tokens shared by several sampled rows (the expert
    prefix of an anchor's continuations): sign: detach when their advantages disagree in sign;
    always: detach every shared copy; never: the ablation without AAGD."""
    filter_zero_variance: bool = True
    """During the warm-up, drop tasks whose rewards (all their samples) are all equal."""
    after_warmup: Literal["flat", "arpo"] = "flat"
    """The strategy after the warm-up: plain GRPO groups (flat) or ARPO branching."""


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
