"""Core types: the contract between tirl's layers (DESIGN.md, "The core types").

Axis-suffix convention used across tirl for tensors and arrays:
  _B batch rows, _G group member, _T token, _K step/turn, _V vocabulary.
Masks are named for what is 1 (``loss_mask_T`` is 1 on trained tokens).

A trajectory's token sequence is *exactly* ``prompt_token_ids`` followed by the
concatenation of its segments' ``token_ids``. Text is derived from tokens, never
the other way round during training.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


class Origin(str, enum.Enum):
    """Who produced a run of tokens. Only POLICY tokens are ever trained on-policy."""

    PROMPT = "prompt"
    POLICY = "policy"  # sampled by the current policy: trainable
    TOOL = "tool"  # observation text tokenised by tirl: in context, never trained
    EXPERT = "expert"  # another model or a file: off-policy


class StopReason(str, enum.Enum):
    """Why a trajectory ended."""

    ANSWER = "answer"  # the model closed its final answer
    EOS = "eos"  # end-of-sequence without a closed answer tag
    TOOL_CAP = "tool_cap"  # reached the configured number of tool calls
    LENGTH = "length"  # reached the token budget
    VOID_TURN = "void_turn"  # a turn with neither a tool call nor an answer (SimpleTIR filter)
    ERROR = "error"  # infrastructure failure (sandbox died after retries); dropped, never scored


@dataclass
class Task:
    """One problem: a prompt (plain text or chat messages), a gold answer and metadata.

    ``answer`` is a string for math (compared by the verifier) or a list of strings for QA
    (max token-F1 over them). ``meta`` carries source, difficulty and ``verifier`` kind.
    """

    id: str
    prompt: str | list[dict[str, str]]
    answer: str | list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def verifier(self) -> str:
        return self.meta.get("verifier", "math")


@dataclass
class Segment:
    """A run of tokens with one origin.

    ``logprobs`` are the behaviour policy's log-probabilities of ``token_ids`` where known
    (POLICY always; EXPERT when scored), ``entropy`` the per-token entropy of the sampling
    distribution where the engine reports it.
    """

    origin: Origin
    token_ids: list[int]
    logprobs: list[float] | None = None
    entropy: list[float] | None = None

    def __len__(self) -> int:
        return len(self.token_ids)


@dataclass
class ToolCall:
    """A tool call parsed from model text. ``error`` is set when the call was malformed:
    the call is then not executed and the error text is what the model reads."""

    name: str
    arguments: dict[str, Any]
    raw: str = ""
    error: str | None = None


@dataclass
class Observation:
    """What a tool returned.

    ``ok`` is False when the code raised or the call was malformed; ``timed_out`` when the
    wall or CPU limit hit. ``infra_error`` marks a failure of tirl's machinery (a sandbox
    worker that could not be started), which must never be scored as the model's fault.
    """

    ok: bool
    output: str
    error: str | None = None
    timed_out: bool = False
    latency_ms: float = 0.0
    infra_error: bool = False

    def text(self) -> str:
        """The text the model reads."""
        return self.output


@dataclass
class Step:
    """One assistant action: indices of its POLICY/EXPERT segment, the tool call it made,
    the observation and the index of the TOOL segment that answered (None when no tool ran)."""

    action_segment: int
    call: ToolCall | None = None
    observation: Observation | None = None
    tool_segment: int | None = None


@dataclass
class Trajectory:
    """One complete (or stopped) multi-turn sample for a task."""

    task_id: str
    sample: int
    prompt_token_ids: list[int]
    segments: list[Segment] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    answer: str | None = None
    gold: str | list[str] | None = None
    stop_reason: StopReason | None = None
    reward: float = 0.0
    rewards: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    text: str = ""  # decoded completion (everything after the prompt), for reading only
    error: str | None = None  # what failed, for stop reason ERROR (a tool's infrastructure or the loop itself)
    policy_version: int = 0  # optimiser steps the sampling weights had taken (a rollout worker's may lag the trainer's)

    @property
    def completion_ids(self) -> list[int]:
        return [t for s in self.segments for t in s.token_ids]

    @property
    def token_ids(self) -> list[int]:
        """The exact ids the model saw: prompt + every segment, in order."""
        return self.prompt_token_ids + self.completion_ids

    @property
    def n_tool_calls(self) -> int:
        return sum(1 for s in self.steps if s.call is not None)

    @property
    def n_policy_tokens(self) -> int:
        return sum(len(s) for s in self.segments if s.origin is Origin.POLICY)


@dataclass
class ScriptStep:
    """One step of a scripted (expert / reference) solution in protocol-neutral form:
    a thought and, optionally, a call of ``tool`` with ``code`` as its main argument (the
    Python source, the search query). The protocol renders it into text; the call is
    executed for real so the observation the trajectory carries is genuine."""

    thought: str
    code: str | None = None
    tool: str = "python"


@dataclass
class Script:
    """A whole scripted solution: steps, then a closing thought and the final answer."""

    steps: list[ScriptStep]
    final_thought: str
    answer: str


@dataclass
class TrainRow:
    """One training sequence and its aligned per-token arrays: the only thing the loss sees.
    Every recipe is expressed by filling these arrays (DESIGN.md, "The core types")."""

    input_ids: list[int]
    loss_mask: list[float]  # 1 = trained by the policy loss
    advantage: list[float]
    old_logprob: list[float]  # behaviour log-probs where known (0 elsewhere); the trainer may recompute
    clip_low: list[float]  # eps_low per token
    clip_high: list[float]  # eps_high per token
    offpolicy: list[float]  # 1 = expert token (off-policy term, never the PPO ratio)
    detach: list[float]  # 1 = shared-prefix token whose gradient is cut
    task_id: str = ""
    sample: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


# -- rollout trees: what rollout/ builds and algo/ reads --------------------------------------


class LeafRole(str, enum.Enum):
    """What kind of experience an E3-TIR leaf is (ALGORITHMS.md §5); None on other trees."""

    SELF = "self"  # self-exploration: sampled from the prompt
    EXPERT = "expert"  # the expert trajectory itself (the expert-guided sample)
    ANCHOR = "anchor"  # a policy continuation of an expert prefix


@dataclass
class CriticalStep:
    """ELPO: what one binary search found on a reference failure (ALGORITHMS.md §4, BEL step 3):
    steps ``t_crit..T`` of the path to leaf ``leaf`` are its critical suffix."""

    leaf: str  # node id of the reference failure's leaf
    t_crit: int  # the first irrecoverable step, counted from 1
    k: int = 0  # the reference's tool-call steps (the search ran over 1..k)
    sample: int | None = None  # the reference trajectory's sample index


@dataclass(eq=False)
class TreeNode:
    """The root (``segments`` = the prompt as one PROMPT segment) or one step: an assistant action
    (its POLICY or EXPERT segment), the tool call it made and the TOOL segment that answered.

    ``trajectory`` is set on leaves only: the complete root-to-leaf trajectory, whose ``reward``
    is the leaf's reward. The lineage fields say how a leaf's trajectory was sampled (the rollout
    strategy records them); ``advantage`` and ``clip_low`` are what credit assignment trained the
    node with (recorded for the saved tree, never read back by training).
    """

    id: str
    segments: list[Segment] = field(default_factory=list)
    call: ToolCall | None = None
    observation: Observation | None = None
    parent: TreeNode | None = field(default=None, repr=False)
    children: list[TreeNode] = field(default_factory=list, repr=False)
    trajectory: Trajectory | None = field(default=None, repr=False)
    # lineage (leaves)
    fork_step: int = 0  # steps shared with the trajectory it continues (0: sampled from the prompt)
    parent_sample: int | None = None  # sample index of the trajectory it continues
    success: bool | None = None  # ELPO's binary success predicate (BEL); None: not recorded
    role: LeafRole | None = None  # E3-TIR's experience type
    anchor_step: int | None = None  # E3-TIR: steps of the expert trajectory an anchor continuation keeps
    # credit (any non-root node)
    advantage: float | None = None
    clip_low: float | None = None

    @property
    def tokens(self) -> list[int]:
        return [t for s in self.segments for t in s.token_ids]

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @property
    def reward(self) -> float | None:
        """The leaf's trajectory reward; None for internal nodes (their value is derived)."""
        return self.trajectory.reward if self.trajectory is not None else None

    @property
    def sample(self) -> int | None:
        """The leaf trajectory's sample index; None for internal nodes."""
        return self.trajectory.sample if self.trajectory is not None else None

    @property
    def depth(self) -> int:
        """Steps from the root (the root is 0, a first step 1)."""
        d, n = 0, self
        while n.parent is not None:
            d, n = d + 1, n.parent
        return d

    def path(self) -> list[TreeNode]:
        """Root to this node, inclusive."""
        out: list[TreeNode] = []
        n: TreeNode | None = self
        while n is not None:
            out.append(n)
            n = n.parent
        return out[::-1]


@dataclass(eq=False)
class RolloutTree:
    """One task's rollouts as a tree of steps (DESIGN.md, "The core types"). A node's children are
    continuations sampled from the fixed prefix that ends with it; a flat group is a tree whose
    only branching node is the root. Built by ``tirl.rollout.tree.build_tree``, read and written
    by ``tirl.rollout.io``, credited by ``tirl.algo``, laid over rows by ``tirl.train.rows``.

    ``meta`` holds what the sampler reports for a reader of the saved tree (ARPO's branch and
    top-up counts, E3-TIR's expert share...); no code reads it."""

    task_id: str
    root: TreeNode
    gold: str | list[str] | None = None
    strategy: str = ""  # the rollout strategy that sampled it (flat, arpo, elpo, e3)
    rollouts: int = 0  # trajectories the policy sampled for it (infrastructure failures included)
    dropped: int = 0  # trajectories left out after an infrastructure failure (DESIGN.md invariant 5)
    critical: list[CriticalStep] = field(default_factory=list)  # ELPO's search results
    meta: dict[str, Any] = field(default_factory=dict)

    def nodes(self) -> Iterator[TreeNode]:
        """Every node, root first, depth-first in child order."""
        stack = [self.root]
        while stack:
            n = stack.pop()
            yield n
            stack.extend(reversed(n.children))

    def leaves(self) -> list[TreeNode]:
        return [n for n in self.nodes() if n.is_leaf and n is not self.root]

    def trajectories(self) -> list[Trajectory]:
        """The leaves' trajectories, in leaf order (the task's group for rewards and GRPO)."""
        return [n.trajectory for n in self.leaves() if n.trajectory is not None]

    def node(self, node_id: str) -> TreeNode:
        for n in self.nodes():
            if n.id == node_id:
                return n
        raise KeyError(f"tree of task {self.task_id!r} has no node {node_id!r}")

    def leaf_for_sample(self, sample: int) -> TreeNode | None:
        for leaf in self.leaves():
            if leaf.sample == sample:
                return leaf
        return None

    @property
    def depth(self) -> int:
        """Branch depth: the most branching nodes (more than one child) on a root-to-leaf path;
        a flat group of two or more has depth 1."""

        def walk(n: TreeNode) -> int:
            here = 1 if len(n.children) > 1 else 0
            return here + max((walk(c) for c in n.children), default=0)

        return walk(self.root)

    @property
    def max_steps(self) -> int:
        return max((leaf.depth for leaf in self.leaves()), default=0)
