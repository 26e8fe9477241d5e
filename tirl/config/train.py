"""The ``run``, ``train`` and ``sft`` sections: where a run lives, how long it trains, what it
evaluates and saves, and the optional SFT warm-up (``tirl.train``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from tirl.config.base import Section


class RunConfig(Section):
    name: str = "run"
    """The run's directory name under out_dir (no path separators)."""
    out_dir: str = "runs"
    recipe: str = ""
    """The recipe the run was started from (set by ``tirl train``; shown by ``tirl runs`` and
    the report, read by nothing else)."""

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not v or v in (".", "..") or "/" in v or "\\" in v or "\0" in v:
            raise ValueError("must be a plain directory name (no '/', not '.' or '..'); put the parent in run.out_dir")
        return v


class TrainConfig(Section):
    steps: int = Field(20, ge=0)
    tasks_per_step: int = Field(8, ge=1)
    seed: int = 0
    eval_every: int = Field(0, ge=0)
    """Evaluate every N steps (0: only before and after training)."""
    eval_samples: int = Field(4, ge=1)
    """Samples per eval task (pass@k needs k <= this)."""
    eval_temperature: float = Field(1.0, ge=0.0)
    eval_sampled: int = Field(0, ge=0)
    """Also evaluate with this many samples per task at temperature 1 (sampled accuracy, pass@k,
    maj@k; logged as ``eval_t1/*``) beside the eval_samples x eval_temperature evaluation, at
    the run's stages (before, after SFT, after RL; not at eval_every); 0: off. Greedy accuracy
    says what the policy's mode does, sampled accuracy what RL samples."""
    logp_gap_warn: float = Field(0.05, ge=0.0)
    """Warn at every step whose mean |sampler log-prob - trainer log-prob| per policy token
    (``policy/logp_gap_engine``) exceeds this (nats). Healthy runs of the 135M model measure
    0.010-0.015 (bf16 sampler, fp32 trainer; docs/RESULTS.md); far above that the sampler and
    the trainer disagree about the policy (stale weights, a different temperature or template),
    and the update is then not on-policy whatever the curves say. 0: never warn."""
    checkpoint_every: int = Field(10, ge=0)
    keep_last: int = Field(2, ge=1)
    save_trajectories: bool = True
    sft_first: bool = False
    """Run the SFT warm-up (the sft section) before RL."""


class SFTConfig(Section):
    source: str = "arith-reference"
    """'reference' or 'arith-reference' (the task's reference solver, arith or lookup, executed on
    training tasks with the run's tools) or a rollout
    JSONL file (only correct trajectories are used unless all_trajectories)."""
    n_examples: int = Field(512, ge=1)
    epochs: int = Field(1, ge=1)
    lr: float = Field(5e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    all_trajectories: bool = False
