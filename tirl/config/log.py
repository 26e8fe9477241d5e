"""The ``log`` section: where a run's numbers go besides ``metrics.jsonl`` (TensorBoard, Weights &
Biases, MLflow: ``tirl.train.tracking``) and the HTML report written at the end of ``tirl train``
(``tirl.report``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tirl.config.base import Section


class WandbSection(Section):
    project: str = "tirl"
    entity: str | None = None
    """The W&B team or user; None: the account's default."""
    mode: Literal["online", "offline", "disabled"] | None = None
    """None: W&B's own choice (``WANDB_MODE``, else online). offline writes the run under the
    run directory's ``wandb/`` for a later ``wandb sync``."""


class MLflowSection(Section):
    tracking_uri: str | None = None
    """None: ``MLFLOW_TRACKING_URI`` when set, else a local file store ``<run.out_dir>/mlruns``
    shared by the runs there (``mlflow ui --backend-store-uri runs/mlruns``)."""
    experiment: str = "tirl"


class ReportSection(Section):
    """What the HTML report embeds (``tirl report`` takes the same numbers as options). A run
    keeps every rollout on disk; the report embeds whole task groups of a few steps, so its
    size does not grow with the run's length."""

    write: bool = True
    """Write ``report.html`` into the run directory at the end of ``tirl train``."""
    steps: int = Field(10, ge=1)
    """Training steps whose rollouts (and trees) are embedded, spread evenly over the run
    (the first and the last included)."""
    tasks: int = Field(4, ge=1)
    """Tasks per embedded step, each with all its samples (tasks with a tool error, a
    truncation, a correct and a wrong answer are taken first)."""
    eval_tasks: int = Field(16, ge=1)
    """Held-out tasks whose evaluation trajectories are embedded, for every evaluation
    (tasks whose correctness changed between the first and the last evaluation first)."""


class LogConfig(Section):
    backends: list[Literal["tensorboard", "wandb", "mlflow"]] = ["tensorboard"]
    """Where step scalars also go, besides metrics.jsonl (which is always written): tensorboard
    (``tb/``), wandb (extra ``tirl[wandb]``), mlflow (extra ``tirl[mlflow]``). W&B and MLflow
    also get the config, each evaluation's table and a table of sampled trajectories per step."""
    table_rows: int = Field(16, ge=0)
    """Trajectories per step in the W&B / MLflow trajectory table (0: no table)."""
    wandb: WandbSection = WandbSection()
    mlflow: MLflowSection = MLflowSection()
    report: ReportSection = ReportSection()

    @field_validator("backends")
    @classmethod
    def _once_each(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("names a backend twice")
        return v
