"""Weights & Biases (``log.backends: [wandb]``, extra ``tirl[wandb]``): the config, step scalars
with the run's step as W&B's step, a ``metric | value`` table per evaluation
(``eval_table/<tag>``) and a ``trajectories`` table per step.

The W&B run lives under ``RUN/wandb`` and keeps the run's name; a resumed tirl run continues the
same W&B run (its id is kept in ``RUN/tracking.json``). W&B's steps only increase, so steps past
the checkpoint that an interrupted process had already logged keep their first values there,
while ``metrics.jsonl`` is rewound to the checkpoint (docs/DESIGN.md, "Runs on disk")."""

from __future__ import annotations

from pathlib import Path

from tirl.config import Config
from tirl.eval.runner import EvalReport
from tirl.train.tracking.base import TABLE_COLUMNS, Tracker, TrackingError, TrajectoryRow, table_data


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, cfg: Config, run_dir: Path, run_id: str | None = None):
        try:
            import wandb
        except ImportError:
            raise TrackingError("log.backends includes wandb, but the wandb package is not installed: pip install 'tirl[wandb]'") from None
        self._wandb = wandb
        s = cfg.log.wandb
        try:
            self._run = wandb.init(
                project=s.project,
                entity=s.entity,
                name=cfg.run.name,
                dir=str(run_dir),
                id=run_id,
                resume="allow",
                mode=s.mode,
                config=cfg.model_dump(mode="json"),
                # tirl's progress bar owns the terminal; W&B capturing it would garble both
                settings=wandb.Settings(console="off", quiet=True),
            )
        except Exception as e:  # noqa: BLE001 - W&B raises many kinds (UsageError, CommError, ...); one line names it
            msg = " ".join(str(e).split())[:300]
            raise TrackingError(
                f"wandb could not start ({type(e).__name__}: {msg}); log in with `wandb login`, or set log.wandb.mode=offline"
            ) from None
        self.run_id = self._run.id

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self._run.log(values, step=step)

    def evaluation(self, step: int, tag: str, report: EvalReport) -> None:
        table = self._wandb.Table(columns=["metric", "value"], data=[list(r) for r in report.rows()])
        self._run.log({f"eval_table/{tag}": table}, step=step)

    def trajectories(self, step: int, rows: list[TrajectoryRow]) -> None:
        self._run.log({"trajectories": self._wandb.Table(columns=TABLE_COLUMNS, data=table_data(rows))}, step=step)

    def close(self, ok: bool = True) -> None:
        self._run.finish(exit_code=0 if ok else 1)
