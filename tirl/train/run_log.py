"""What a run writes: ``metrics.jsonl`` (one line per step), sampled trajectories and rollout
trees per step, and the same scalars, evaluations and trajectory tables to the tracking backends
of ``log.backends`` (``tirl.train.tracking``: TensorBoard, W&B, MLflow). On resume, metric lines
past the checkpoint's step are dropped so the file reads as one uninterrupted run.

``metrics.jsonl`` is written first and is the run's record. A backend that fails in mid-run (a
server gone away) is reported once and dropped; the run goes on."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tirl.eval.runner import EvalReport
from tirl.rollout.io import write_jsonl, write_trees
from tirl.train.tracking import Tracker, trajectory_rows
from tirl.types import RolloutTree, Trajectory


class RunLog:
    def __init__(self, run_dir: Path, trackers: Sequence[Tracker] = (), table_rows: int = 16):
        self.run_dir = run_dir
        self.path = run_dir / "metrics.jsonl"
        self.trackers = list(trackers)
        self.table_rows = table_rows
        self.on_warning: Callable[[str], None] = lambda msg: None

    def truncate_after(self, step: int) -> None:
        """Keep the lines up to ``step``; a line that does not parse (the torn last line of a
        killed run) is dropped."""
        if not self.path.exists():
            return
        keep = [line for line, row in _parsed(self.path) if row is not None and row.get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in keep))

    def log(self, step: int, metrics: dict) -> None:
        row = {"step": step, **{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        finite = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        self._each(lambda t: t.scalars(step, finite))

    def trajectories(self, step: int, trajs: Iterable[Trajectory], kind: str = "trajectories") -> None:
        trajs = list(trajs)
        write_jsonl(self.run_dir / kind / f"step_{step:04d}.jsonl", trajs)
        if kind == "trajectories" and self.table_rows and self.trackers:
            rows = trajectory_rows(step, trajs, self.table_rows)
            self._each(lambda t: t.trajectories(step, rows))

    def evaluation(self, step: int, tag: str, report: EvalReport) -> None:
        """An evaluation's table to the backends (its scalars come with the step's metrics)."""
        self._each(lambda t: t.evaluation(step, tag, report))

    def trees(self, step: int, trees: Iterable[RolloutTree]) -> None:
        """The step's rollout trees, one nested JSON object per line."""
        write_trees(self.run_dir / "trees" / f"step_{step:04d}.jsonl", trees)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [row for _, row in _parsed(self.path) if row is not None]

    def close(self, ok: bool = True) -> None:
        trackers, self.trackers = self.trackers, []
        for t in trackers:
            try:
                t.close(ok)
            except Exception as e:  # noqa: BLE001 - closing one backend must not keep the others open
                self.on_warning(f"warning: closing the {t.name} tracker failed ({type(e).__name__}: {e})")

    def _each(self, call: Callable[[Tracker], None]) -> None:
        for t in list(self.trackers):
            try:
                call(t)
            except Exception as e:  # noqa: BLE001 - any backend failure; metrics.jsonl already holds the values
                self.trackers.remove(t)
                msg = " ".join(str(e).split())[:200]
                self.on_warning(f"warning: the {t.name} tracker failed ({type(e).__name__}: {msg}); it is dropped, metrics.jsonl keeps every step")


def _parsed(path: Path) -> list[tuple[str, dict | None]]:
    """(line, its object or None when it is not one JSON object) for every non-blank line."""
    out: list[tuple[str, dict | None]] = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        out.append((line, row if isinstance(row, dict) else None))
    return out
