"""TensorBoard: step scalars as events under ``RUN/tb`` (``tensorboard --logdir runs``)."""

from __future__ import annotations

from pathlib import Path

from tirl.train.tracking.base import Tracker, TrackingError


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, run_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TrackingError("log.backends includes tensorboard, but the tensorboard package is not installed: pip install tensorboard") from None

        self._tb = SummaryWriter(str(run_dir / "tb"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self._tb.add_scalar(k, v, step)
        self._tb.flush()

    def close(self, ok: bool = True) -> None:
        self._tb.close()
