"""A run directory belongs to one run and one process at a time.

``claim`` takes an exclusive lock on ``RUN/.lock`` (``flock``: released by the kernel when the
process dies, so a killed run never leaves a stale lock) and, for a fresh run, refuses a
directory that already holds a run unless told to overwrite it. Two processes writing one
run would delete each other's checkpoint temporaries and interleave their metrics; a fresh
run over an old one would append to its metrics and leave the old checkpoint as "latest".
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from tirl.errors import UserError

LOCK = ".lock"
# What a run writes (tirl.train.rl_trainer, run_log, checkpoint); --overwrite removes these.
RUN_FILES = (
    "config.yaml",
    "metrics.jsonl",
    "sft_metrics.jsonl",
    "eval.json",
    "checkpoints",
    "final_model",
    "tb",
    "trajectories",
    "trees",
    "plots",
    "report.html",
    "tracking.json",
    "wandb",
)


class RunDirError(UserError, RuntimeError):
    """A run directory that cannot be used as asked; the message says what to do."""


class RunDirLock:
    """The held lock; ``release`` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __del__(self) -> None:
        try:
            self.release()
        except OSError:
            pass


def holds_a_run(run_dir: Path) -> bool:
    """Whether a run wrote anything beyond its config (a start that failed before its first
    step leaves only config.yaml, and may be started again)."""
    return any((run_dir / name).exists() for name in RUN_FILES if name != "config.yaml")


def claim(run_dir: Path, fresh: bool, overwrite: bool = False) -> RunDirLock:
    """Lock ``run_dir`` for this process. ``fresh``: a new run, which must not land on an
    existing one (``overwrite`` removes the old run's files first)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} is a file; choose another run.name or run.out_dir")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RunDirError(f"cannot create the run directory {run_dir}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise RunDirError(
            f"run directory {run_dir} is in use by another tirl process{f' (pid {holder})' if holder else ''}; "
            "wait for it to finish or choose another run.name"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    lock = RunDirLock(run_dir / LOCK, fd)
    if fresh and holds_a_run(run_dir):
        if not overwrite:
            lock.release()
            raise RunDirError(
                f"run directory {run_dir} already holds a run; continue it with --resume {run_dir}, "
                "choose another run.name, or start over with --overwrite"
            )
        for name in RUN_FILES:
            p = run_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    return lock


def lock_holder(run_dir: Path) -> int | None:
    """The pid of the process that holds ``run_dir``'s lock, read from ``/proc/locks`` (a
    probe that took the lock itself could make a starting run fail to claim it), or None."""
    try:
        st = os.stat(run_dir / LOCK)
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in table.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 25657 fe:00:5433215 0 EOF"; a waiter's line carries "->"
        parts = line.split()
        if len(parts) < 6 or parts[1] != "FLOCK" or "->" in parts:
            continue
        try:
            major, minor, inode = parts[5].split(":")
            if int(inode) == st.st_ino and os.makedev(int(major, 16), int(minor, 16)) == st.st_dev:
                return int(parts[4])
        except ValueError:
            continue
    return None


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
