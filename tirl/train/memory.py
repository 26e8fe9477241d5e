"""Returning memory between runs in one process (the comparison scripts train several models
one after another).

glibc keeps freed heap pages of large tensor allocations in its arenas, so a process that
builds trainer after trainer holds on to the peak of every one of them; ``malloc_trim`` hands
the free pages back. A no-op where glibc is not the allocator.
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
