"""MLflow (``log.backends: [mlflow]``, extra ``tirl[mlflow]``): the config as parameters and as
``config.json``, step scalars, ``eval/<tag>.json`` and ``trajectories/step_XXXX.json`` tables
(MLflow's table layout: ``{"columns": [...], "data": [[...], ...]}``).

MLflow metric names allow only letters, digits and ``_-. :/``, so ``pass@4`` is logged as
``pass_at_4`` (``mlflow_key``). Without a tracking URI the runs go to a local file store,
``<run.out_dir>/mlruns``: the SQL stores need SQLAlchemy, which ``mlflow-skinny`` does not bring,
and MLflow 3 refuses file stores unless ``MLFLOW_ALLOW_FILE_STORE`` is set, which tirl then sets
for its own process. A resumed run continues its MLflow run (id in ``RUN/tracking.json``)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from tirl.config import Config
from tirl.eval.runner import EvalReport
from tirl.train.tracking.base import TABLE_COLUMNS, Tracker, TrackingError, TrajectoryRow, table_data

_BAD = re.compile(r"[^A-Za-z0-9_\-. :/]")
PARAM_CHARS = 500  # MLflow's older servers refuse longer parameter values
BATCH = 100  # log_batch takes at most 100 parameters (and 1000 metrics) per call


def mlflow_key(name: str) -> str:
    """A tirl metric name as MLflow accepts it: ``eval/pass@4`` -> ``eval/pass_at_4``."""
    return _BAD.sub("_", name.replace("@", "_at_"))


def _flat(tree: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = json.dumps(v) if not isinstance(v, str) else v
    return out


def default_uri(cfg: Config) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or (Path(cfg.run.out_dir).resolve() / "mlruns").as_uri()


class MLflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, cfg: Config, run_dir: Path, run_id: str | None = None):
        try:
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise TrackingError("log.backends includes mlflow, but the mlflow package is not installed: pip install 'tirl[mlflow]'") from None
        uri = cfg.log.mlflow.tracking_uri or default_uri(cfg)
        if uri.startswith("file:") or "://" not in uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            self._client = c = MlflowClient(tracking_uri=uri)
            exp = c.get_experiment_by_name(cfg.log.mlflow.experiment)
            exp_id = exp.experiment_id if exp is not None else c.create_experiment(cfg.log.mlflow.experiment)
            if run_id is not None:
                c.update_run(run_id, status="RUNNING")
            else:
                run_id = c.create_run(exp_id, run_name=cfg.run.name, tags={"tirl.run_dir": str(run_dir.resolve())}).info.run_id
                params = [Param(k[:250], v[:PARAM_CHARS]) for k, v in _flat(cfg.model_dump(mode="json")).items()]
                for i in range(0, len(params), BATCH):
                    c.log_batch(run_id, params=params[i : i + BATCH])
            c.log_dict(run_id, cfg.model_dump(mode="json"), "config.json")
        except Exception as e:  # noqa: BLE001 - MLflow raises MlflowException, OSError, requests errors; one line names it
            msg = " ".join(str(e).split())[:300]
            raise TrackingError(f"mlflow could not start at {uri} ({type(e).__name__}: {msg}); check log.mlflow.tracking_uri") from None
        self.run_id = run_id
        self.uri = uri

    def scalars(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(k), float(v), ts, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self._client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def evaluation(self, step: int, tag: str, report: EvalReport) -> None:
        self._client.log_dict(self.run_id, {"columns": ["metric", "value"], "data": [list(r) for r in report.rows()]}, f"eval/{tag}.json")

    def trajectories(self, step: int, rows: list[TrajectoryRow]) -> None:
        self._client.log_dict(self.run_id, {"columns": TABLE_COLUMNS, "data": table_data(rows)}, f"trajectories/step_{step:04d}.json")

    def close(self, ok: bool = True) -> None:
        self._client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")
