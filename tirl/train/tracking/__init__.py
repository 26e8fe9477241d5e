"""Tracking backends (``log.backends``): TensorBoard, Weights & Biases, MLflow. ``make_trackers``
starts the configured ones and keeps the W&B / MLflow run ids in ``RUN/tracking.json`` so a
resumed run continues the same tracked runs."""

from __future__ import annotations

import json
from pathlib import Path

from tirl.config import Config
from tirl.train.tracking.base import TABLE_COLUMNS, Tracker, TrackingError, TrajectoryRow, trajectory_rows

IDS_FILE = "tracking.json"

__all__ = ["IDS_FILE", "TABLE_COLUMNS", "Tracker", "TrackingError", "TrajectoryRow", "make_trackers", "trajectory_rows"]


def make_trackers(cfg: Config, run_dir: Path, resume: bool = False) -> list[Tracker]:
    """The run's backends, started (a backend that cannot start is a one-line TrackingError,
    raised before the run trains; the ones already started are closed)."""
    ids_path = run_dir / IDS_FILE
    ids: dict = {}
    if resume and ids_path.is_file():
        try:
            ids = json.loads(ids_path.read_text())
        except ValueError:
            ids = {}  # a torn file: the resumed run starts new tracked runs
    out: list[Tracker] = []
    try:
        for name in cfg.log.backends:
            if name == "tensorboard":
                from tirl.train.tracking.tensorboard import TensorBoardTracker

                out.append(TensorBoardTracker(run_dir))
            elif name == "wandb":
                from tirl.train.tracking.wandb_backend import WandbTracker

                out.append(WandbTracker(cfg, run_dir, ids.get("wandb")))
            elif name == "mlflow":
                from tirl.train.tracking.mlflow_backend import MLflowTracker

                out.append(MLflowTracker(cfg, run_dir, ids.get("mlflow")))
    except BaseException:
        for t in out:
            t.close(ok=False)
        raise
    kept = {t.name: t.run_id for t in out if t.run_id is not None}
    if kept:
        ids_path.write_text(json.dumps(kept))
    return out
