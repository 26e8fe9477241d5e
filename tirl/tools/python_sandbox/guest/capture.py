"""Capture what a cell prints, without letting huge output cost memory.

Two channels end up in the observation:

- ``sys.stdout`` / ``sys.stderr`` are replaced by streams writing into one shared
  :class:`BoundedSink` (one sink so prints and warnings stay in order, as in a notebook).
  The sink keeps the first ``limit`` characters and only *counts* the rest, so
  ``print('x' * 10**8)`` costs a counter, not a second copy of 100 MB.
- File descriptors 1 and 2 point to an anonymous temporary file (:class:`FdCapture`), which
  collects output written below Python: ``os.system``, subprocesses, C extensions. Its size
  is bounded by RLIMIT_FSIZE; only a bounded prefix is ever read back.
"""

from __future__ import annotations

import io
import os


class BoundedSink:
    """Keeps the first ``limit`` characters written, counts all of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[str] = []
        self._kept = 0
        self.total = 0

    def write(self, text: str) -> None:
        n = len(text)
        self.total += n
        room = self.limit - self._kept
        if room > 0:
            piece = text if n <= room else text[:room]
            self._parts.append(piece)
            self._kept += len(piece)

    def value(self) -> str:
        return "".join(self._parts)

    def reset(self) -> None:
        self._parts.clear()
        self._kept = 0
        self.total = 0


class _BinaryStream(io.RawIOBase):
    """``sys.stdout.buffer``: bytes are decoded and go to the same sink."""

    def __init__(self, sink: BoundedSink) -> None:
        self._sink = sink

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        data = bytes(data)
        self._sink.write(data.decode("utf-8", "replace"))
        return len(data)


class CaptureStream(io.TextIOBase):
    """A text stream for ``sys.stdout`` or ``sys.stderr`` that writes into a sink.

    ``fileno()`` returns the real descriptor (1 or 2, the :class:`FdCapture` file) so code
    that hands ``sys.stdout`` to a subprocess or to ``faulthandler`` still works and its
    output is still captured.
    """

    def __init__(self, sink: BoundedSink, name: str, fd: int) -> None:
        super().__init__()
        self._sink = sink
        self._name = name
        self._fd = fd
        self.buffer = _BinaryStream(sink)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._name

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str) -> int:  # type: ignore[override]
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._sink.write(text)
        return len(text)

    def flush(self) -> None:
        pass


class FdCapture:
    """Points descriptors 1 and 2 at an unlinked temporary file opened with O_APPEND.

    The file is anonymous (O_TMPFILE, or created then unlinked) so nothing is left on disk,
    and O_APPEND keeps writers that share it (subprocesses still running) appending at the
    end after :meth:`take` truncates it.
    """

    def __init__(self, directory: str) -> None:
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(directory, flags | os.O_TMPFILE, 0o600)
        except OSError:  # a filesystem without O_TMPFILE
            path = os.path.join(directory, f".tirl-output-{os.getpid()}")
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            os.unlink(path)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    @staticmethod
    def take(limit: int) -> tuple[str, int]:
        """Return (the first ``limit`` characters, the total in characters) and empty the file.
        Only a bounded prefix is read; beyond it, bytes are counted as characters."""
        try:
            size = os.fstat(1).st_size
        except OSError:  # the cell closed descriptor 1
            return "", 0
        if size == 0:
            return "", 0
        data = os.pread(1, min(size, 4 * limit), 0)
        try:
            os.ftruncate(1, 0)
        except OSError:
            pass
        text = data.decode("utf-8", "replace")
        return text[:limit], len(text) + (size - len(data))
