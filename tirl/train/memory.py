"""Process memory: the peak resident memory of a phase, and returning memory between runs.

``PhasePeak`` measures a phase's own peak (the rollout of a step, its update, an evaluation):
Linux keeps the process's high-water mark of resident memory (``VmHWM`` in /proc/self/status),
and writing ``5`` to /proc/self/clear_refs resets it to the current resident size (Linux >= 4.0,
proc(5)), so each phase starts from where the previous one left off. Where either file is
unavailable the probe reports nothing (None) rather than a wrong number.

glibc keeps freed heap pages of large tensor allocations in its arenas, so a process that
builds trainer after trainer holds on to the peak of every one of them; ``release_memory``
hands the free pages back (``malloc_trim``). A no-op where glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc


def release_memory() -> None:
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes() -> int | None:
    """Resident memory now (VmRSS), or None where /proc is unavailable."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


class PhasePeak:
    """``start()`` at a phase's beginning, ``peak_gb()`` at its end: the highest resident memory
    in between, in GiB (None where the kernel cannot reset the high-water mark)."""

    def __init__(self) -> None:
        self.ok = True

    def start(self) -> None:
        if not self.ok:
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.ok = False

    def peak_gb(self) -> float | None:
        kib = _status_kib("VmHWM") if self.ok else None
        return None if kib is None else kib / 2**20
