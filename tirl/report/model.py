"""What a report holds: typed views of a run, built from its directory (``tirl.report.extract``)
and serialised as one JSON object into the HTML file (``tirl.report.html``), where the viewer's
scripts read the same field names.

Per-token numbers are stored as integers in hundredths (``-0.137`` nats -> ``-14``): the viewer
only colours and prints them to two decimals, and integers keep a report of ten thousands of
tokens a third smaller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SegmentView:
    """A run of tokens with one origin (prompt, policy, tool, expert), as the model saw them."""

    origin: str
    tokens: list[str]
    """Each token's text (empty strings when the run has no tokenizer to decode them)."""
    logprob: list[int] | None = None
    """Behaviour log-prob per token, x100."""
    entropy: list[int] | None = None
    """Sampling entropy per token, x100."""
    trained: bool | None = None
    """Whether the policy loss trained these tokens (``tirl.rollout.masks.loss_mask``); None for
    evaluation trajectories, which are not trained."""
    step: int | None = None
    """The assistant step (0-based) the segment belongs to."""
    advantage: float | None = None
    """The advantage its tokens were trained with (its step's tree node, else its leaf)."""
    clip_low: float | None = None
    widened: bool = False
    """Inside ELPO's error-localised clipping region (the lower clip bound was widened)."""
    critical: bool = False
    """The first step of an ELPO critical suffix (t_crit)."""


@dataclass
class CallView:
    """One tool call and what it returned."""

    step: int
    name: str
    code: str
    output: str
    ok: bool
    error: str | None = None
    parse_error: str | None = None
    timed_out: bool = False
    infra_error: bool = False
    latency_ms: float = 0.0


@dataclass
class TrajectoryView:
    key: str
    """Unique in the report: ``run/source/step/task/sample``."""
    source: str
    """``train`` or the evaluation's tag (``before``, ``after_sft``, ``step10``, ``after``, ...)."""
    step: int
    task_id: str
    sample: int
    segments: list[SegmentView]
    calls: list[CallView]
    answer: str | None
    gold: str
    reward: float
    rewards: dict[str, float]
    stop_reason: str
    correct: bool | None
    """The ``correct`` reward component (None when it was not computed)."""
    tool_error: bool
    truncated: bool
    advantage: float | None = None
    """The leaf's advantage (per-trajectory credit); per-step values are on the segments."""
    text: str = ""
    """The decoded completion (searched by the viewer; shown when tokens cannot be decoded)."""
    error: str | None = None


@dataclass
class NodeView:
    """One node of a rollout tree: the root (the prompt) or an assistant step."""

    id: str
    parent: str | None
    depth: int
    text: str
    """The step's own text (cut), for hover."""
    code: str | None = None
    output: str | None = None
    tool_ok: bool | None = None
    fork: bool = False
    """More than one continuation was sampled from here."""
    advantage: float | None = None
    """As trained (recorded on the node by the strategy's credit)."""
    a_branch: float | None = None
    """ELPO: branch advantage among siblings (Eq. 7)."""
    a_traj: float | None = None
    """ELPO: mean trajectory advantage of the leaves below (Eq. 8-9)."""
    clip_low: float | None = None
    widened: bool = False
    critical: bool = False
    # leaves
    sample: int | None = None
    reward: float | None = None
    correct: bool | None = None
    success: bool | None = None
    role: str | None = None
    fork_step: int = 0
    parent_sample: int | None = None
    stop_reason: str | None = None
    trajectory: str | None = None
    """The key of the leaf's trajectory when the report embeds it."""


@dataclass
class TreeView:
    step: int
    task_id: str
    strategy: str
    rollouts: int
    dropped: int
    nodes: list[NodeView]
    critical: list[dict[str, Any]] = field(default_factory=list)
    """ELPO's searches: ``leaf``, ``sample``, ``t_crit``, ``k``."""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalStage:
    tag: str
    """The evaluation's tag (its trajectories are in ``eval_<tag>/``)."""
    label: str
    step: int
    scalars: dict[str, float]


@dataclass
class StepSample:
    step: int
    tasks_total: int
    trajectories: list[TrajectoryView]
    trees: list[TreeView] = field(default_factory=list)


@dataclass
class RunView:
    name: str
    path: str
    label: str
    """What the run trained: recipe, strategy, advantage / loss, model, task."""
    status: str
    config_yaml: str
    metrics: dict[str, list[list[float]]]
    """Every numeric metric of metrics.jsonl as ``[[step, value], ...]``."""
    evals: list[EvalStage]
    steps: list[StepSample]
    eval_trajectories: dict[str, list[TrajectoryView]]
    """Per evaluation tag, the embedded tasks' trajectories."""
    prompts: dict[str, str]
    """Each embedded task's prompt text, by task id."""
    steps_total: int
    sample_note: str
    """What of the run the report embeds, in one sentence."""
    notes: list[str] = field(default_factory=list)
    """Things the reader should know (no tokenizer found, an unreadable file skipped)."""


@dataclass
class ReportData:
    title: str
    generated: str
    runs: list[RunView]
