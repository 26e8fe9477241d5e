"""Length-prefixed JSON frames over pipes: the host <-> worker and worker <-> cell protocol.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. Pipes carry
bytes without message boundaries; the prefix restores them. JSON (not pickle) because the
cell process runs the model's code: nothing it sends may be able to execute in its reader.

Reads take an optional deadline and an optional *watch* file descriptor (a pidfd): a reader
waiting for a process that died returns at once with :class:`Closed` even when an orphaned
grandchild still holds the pipe's write end open and no EOF would ever arrive.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 256 << 20  # a corrupt length prefix must not make the reader allocate gigabytes


class Closed(EOFError):
    """The peer closed its end or died before a whole frame arrived."""


class Timeout(TimeoutError):
    """The deadline passed before a whole frame arrived."""


class BadFrame(ValueError):
    """A frame header no writer of this protocol produces (a length beyond MAX_FRAME)."""


def encode(obj: Any) -> bytes:
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return HEADER.pack(len(data)) + data


def decode(data: bytes) -> Any:
    return json.loads(data.decode("utf-8", "surrogatepass"))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_frame(fd: int, obj: Any) -> None:
    write_all(fd, encode(obj))


def _wait_readable(fd: int, deadline: float | None, watch: int | None) -> None:
    """Block until ``fd`` is readable. Raise Timeout at the deadline and Closed when ``watch``
    (a pidfd) says the writer exited while ``fd`` has nothing left to read."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if watch is not None:
        poller.register(watch, select.POLLIN)
    while True:
        if deadline is None:
            wait_ms = None
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout("no reply before the deadline")
            wait_ms = max(1, int(remaining * 1000 + 0.999))
        try:
            events = poller.poll(wait_ms)
        except InterruptedError:  # pragma: no cover - PEP 475 retries poll itself
            continue
        fds = {ev_fd for ev_fd, _ in events}
        if fd in fds:
            return
        if watch is not None and watch in fds:
            raise Closed("the process exited")


def _read_exact(fd: int, n: int, deadline: float | None, watch: int | None) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        if deadline is not None or watch is not None:
            _wait_readable(fd, deadline, watch)
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise Closed("end of file")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_payload(fd: int, deadline: float | None = None, watch: int | None = None) -> bytes:
    """Read one frame's JSON bytes, undecoded."""
    (length,) = HEADER.unpack(_read_exact(fd, HEADER.size, deadline, watch))
    if length > MAX_FRAME:
        raise BadFrame(f"corrupt frame length {length}")
    return _read_exact(fd, length, deadline, watch)


def readable_now(fd: int) -> bool:
    """Whether ``fd`` has bytes waiting (or is at end of file) right now."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(ev & select.POLLIN for _, ev in poller.poll(0))


def read_frame(fd: int, deadline: float | None = None, watch: int | None = None) -> Any:
    """Read one frame. ``deadline`` is a ``time.monotonic()`` value or None (wait forever)."""
    return decode(read_payload(fd, deadline, watch))
