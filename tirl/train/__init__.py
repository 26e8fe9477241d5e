"""Training: trainers, their update step, and the run state they save and resume from."""

from tirl.train.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    step_dir,
)
from tirl.train.rng import capture_rng, restore_rng

__all__ = [
    "CheckpointError",
    "capture_rng",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "restore_rng",
    "save_checkpoint",
    "step_dir",
]
