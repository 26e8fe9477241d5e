"""The ``pareto``, ``repair`` and ``flywheel`` sections: data curation between RL rounds
(ET-Agent and AutoTraj; ALGORITHMS.md §6-7, ``tirl.curate``)."""

from __future__ import annotations

from pydantic import Field

from tirl.config.base import Section


class ParetoConfig(Section):
    """ET-Agent group-wise Pareto sampling (ALGORITHMS.md §6 Phase 2a, arXiv 2601.06860 §4.2.2)."""

    samples_per_task: int = Field(8, ge=2)
    """K rollouts per candidate task (released code 8; paper 16)."""
    n_select: int = Field(64, ge=1)
    """N tasks kept for the next round (released script 8000)."""
    mixed_only: bool = True
    """Keep only groups with both a correct and a wrong member (released code's post-filter)."""
    qa_threshold: float = Field(0.75, ge=0.0, le=1.0)
    """QA groups are mixed when one F1 >= this and one F1 < it."""
    n_candidates: int = Field(256, ge=1)
    """Candidate training tasks sampled each round (ET-Agent samples every source question)."""
    rounds: int = Field(3, ge=1)
    """Curriculum rounds of (Pareto sampling, RL); σ decays to 0 within each (ET-Agent: 3)."""


class RepairConfig(Section):
    """AutoTraj trajectory scoring and repair (ALGORITHMS.md §7, arXiv 2601.23032)."""

    keep_all: float = Field(0.90, ge=0.0, le=1.0)
    """Keep every correct trajectory of a task when all score >= this."""
    keep_best: float = Field(0.86, ge=0.0, le=1.0)
    """Otherwise keep the best when it scores >= this; the rest go to the repairer."""
    accept_correct: float = Field(0.86, ge=0.0, le=1.0)
    """Accept the repair of a correct low-quality trajectory when correct and scoring >= this."""
    accept_wrong: float = Field(0.80, ge=0.0, le=1.0)
    """Accept the repair of a wrong trajectory when correct and scoring >= this."""
    max_tool_calls: int = Field(3, ge=0)
    """Tool calls allowed to the repairer (AutoTraj: at most 3)."""
    repairer: str | None = None
    """Repairer: a model (alias, directory, hub id or ``openai:<endpoint>``) given the question and
    the bad trajectory; None: the policy itself. ``reference`` (the task's reference solver,
    an oracle, for arith and lookup; also ``arith-reference``) or a ``.jsonl`` of trajectories write the task's solution without reading it."""
    temperature: float = Field(0.0, ge=0.0)
    """Repairer sampling temperature (AutoTraj repairs greedily)."""


class FlywheelConfig(Section):
    """ET-Agent self-evolving data flywheel (ALGORITHMS.md §6, arXiv 2601.06860 §4.1, Alg. 1)."""

    rounds: int = Field(3, ge=0)
    """Evolution rounds per task (released code MAX_EVOLVE_TRAJECTORIES_TIMES=3)."""
    initial_samples: int = Field(2, ge=1)
    """Rollouts per task before evolving."""
    judge: str | None = None
    """Judge / refiner model; None: the policy itself (as the paper describes)."""
    judge_max_tokens: int = Field(512, ge=1)
    """Token budget of one judge reply (greedy)."""
    hint: str = "Wait, perhaps I should use Python tools and rethink this problem."
    """Hint injected after a wrong trajectory's flawed step (paper Fig. 9, math)."""
    extra_tool_calls: int = Field(4, ge=0)
    """Extra tool calls allowed to an evolved continuation (released code +4)."""
