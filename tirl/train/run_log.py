"""What a run writes: ``metrics.jsonl`` (one line per step), TensorBoard events, sampled
trajectories and rollout trees per step, and (at the end) PNG plots. On resume, metric lines
past the checkpoint's step are dropped so the file reads as one uninterrupted run."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from tirl.rollout.io import write_jsonl, write_trees
from tirl.types import RolloutTree, Trajectory


class RunLog:
    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.run_dir = run_dir
        self.path = run_dir / "metrics.jsonl"
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir / "tb"))
            except ImportError:  # tensorboard is optional at run time
                self._tb = None

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
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def trajectories(self, step: int, trajs: Iterable[Trajectory], kind: str = "trajectories") -> None:
        write_jsonl(self.run_dir / kind / f"step_{step:04d}.jsonl", trajs)

    def trees(self, step: int, trees: Iterable[RolloutTree]) -> None:
        """The step's rollout trees, one nested JSON object per line."""
        write_trees(self.run_dir / "trees" / f"step_{step:04d}.jsonl", trees)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [row for _, row in _parsed(self.path) if row is not None]

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


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
