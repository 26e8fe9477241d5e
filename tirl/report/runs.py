"""A run directory read back: its config, metrics and state (``tirl runs`` lists them; the report
starts from one). Reading never changes a run, a live one included (its lock is looked up in
``/proc/locks``, not taken)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tirl.config import Config, ConfigError, Section, load_config
from tirl.errors import UserError
from tirl.train.checkpoint import list_checkpoints
from tirl.train.run_dir import lock_holder
from tirl.train.run_log import RunLog


class ReportError(UserError, ValueError):
    """A directory that is not a run, or a report that cannot be written; the message says which."""


@dataclass
class RunInfo:
    path: Path
    cfg: Config
    metrics: list[dict]
    status: str
    """running (its lock is held), finished, resumable (stopped with a checkpoint to continue
    from: ``tirl train --resume``) or interrupted (stopped before its first checkpoint)."""
    steps_done: int
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def recipe(self) -> str:
        """The recipe name when the run recorded it, else what its config trains."""
        c = self.cfg
        how = c.strategy.name if c.strategy.name != "flat" else f"{c.algo.advantage}/{c.algo.loss}"
        sft = "sft+" if c.train.sft_first else ""
        if not c.run.recipe or c.run.recipe == f"{sft}{how}":
            return f"{sft}{how}"
        return f"{c.run.recipe} ({sft}{how})"

    def eval_accuracy(self, prefix: str, first: bool) -> tuple[float | None, int | None]:
        """(accuracy, step) of the first or last evaluation logged under ``prefix/``."""
        rows = [r for r in self.metrics if isinstance(r.get(f"{prefix}/accuracy"), (int, float))]
        if not rows:
            return None, None
        r = rows[0] if first else rows[-1]
        return float(r[f"{prefix}/accuracy"]), int(r.get("step", 0))

    @property
    def wall_s(self) -> float:
        """Training time (RL steps and SFT, ``total/wall_s``) plus every evaluation's."""
        last = next((r["total/wall_s"] for r in reversed(self.metrics) if isinstance(r.get("total/wall_s"), (int, float))), 0.0)
        evals = sum(v for r in self.metrics for k, v in r.items() if k.startswith("eval") and k.endswith("/wall_s") and isinstance(v, (int, float)))
        return float(last) + evals


def read_run(run_dir: Path) -> RunInfo:
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: " + ("not a directory" if run_dir.exists() else "no such directory"))
    if not (run_dir / "config.yaml").is_file():
        raise ReportError(f"{run_dir} is not a tirl run directory (it has no config.yaml)")
    notes = []
    try:
        cfg = load_config(str(run_dir / "config.yaml"))
    except ConfigError as e:
        # a run of another tirl version: show it with this version's defaults for what does not load
        notes.append(f"config.yaml does not load with this tirl ({e}); defaults are assumed where the report needs a setting")
        cfg = _lenient_config(run_dir / "config.yaml")
    metrics = RunLog(run_dir).read()
    steps_done = max((int(r.get("step", 0)) for r in metrics), default=0)
    return RunInfo(run_dir, cfg, metrics, _status(run_dir, cfg, steps_done), steps_done, notes)


def _lenient_config(path: Path) -> Config:
    """The sections of a config file that load on their own; defaults for the others."""
    try:
        tree = yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError:
        tree = None
    cfg = Config()
    if isinstance(tree, dict):
        for name in Config.model_fields:
            if isinstance(tree.get(name), dict) and isinstance(getattr(cfg, name), Section):
                try:
                    setattr(cfg, name, type(getattr(cfg, name)).model_validate(tree[name]))
                except (ValueError, TypeError):
                    continue
    return cfg


def _status(run_dir: Path, cfg: Config, steps_done: int) -> str:
    if lock_holder(run_dir) is not None:
        return "running"
    if steps_done >= cfg.train.steps and (run_dir / "final_model").is_dir():
        return "finished"
    return "resumable" if list_checkpoints(run_dir) else "interrupted"


def find_runs(root: Path) -> list[Path]:
    """``root`` when it is a run, else the runs directly under it, by name."""
    if (root / "config.yaml").is_file():
        return [root]
    if not root.is_dir():
        raise ReportError(f"{root}: " + ("not a directory" if root.exists() else "no such directory"))
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "config.yaml").is_file())
