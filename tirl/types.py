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
    a thought and, optionally, the code it runs. The protocol renders it into text; the
    code is executed for real so the observation the trajectory carries is genuine."""

    thought: str
    code: str | None = None


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
