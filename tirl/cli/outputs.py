"""Output directories are checked before the work that fills them: a bad ``--out`` (a file, a
path under a file, a directory that cannot be written) is one line at the start, not a traceback
after an hour of rollouts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tirl.errors import UserError


class OutputError(UserError):
    """An output location that cannot be written."""


def prepare_out(path: Path, flag: str = "--out") -> Path:
    """Create directory ``path`` (and parents) now and check a file can be written in it."""
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is a file; give a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".tirl-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{flag} {path}: cannot write there ({e.strerror or e})") from e
    return path
