"""Resource limits of a cell process (setrlimit(2)); inherited by everything it forks.

Address space (MemoryError instead of swapping the host), CPU seconds per cell, open files,
processes, file size, and no core files.
"""

from __future__ import annotations

import math
import os
import resource

from .settings import GuestSettings


def apply(settings: GuestSettings, namespaced: bool) -> None:
    mib = 1 << 20
    # RLIMIT_NPROC counts the tasks of this uid in its user namespace (kernel >= 5.14 ucounts):
    # with our own namespace that is launcher + reaper + this process + what the cell forks.
    nproc = settings.max_procs + 3 if namespaced else tasks_of_uid(os.getuid()) + settings.max_procs
    limits = {
        resource.RLIMIT_AS: settings.memory_mb * mib,
        resource.RLIMIT_NOFILE: settings.max_open_files,
        resource.RLIMIT_NPROC: nproc,
        resource.RLIMIT_FSIZE: settings.max_file_mb * mib,
        # 1, not 0: a core pattern that pipes to a helper ignores RLIMIT_CORE except the
        # special value 1 (core(5)); a file pattern needs at least a page. So: no core at all.
        resource.RLIMIT_CORE: 1,
    }
    for which, value in limits.items():
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))
    # When the worker's memory cap (a cgroup) is reached, the kernel's OOM killer takes a
    # session's process, not the worker that holds every other session (raising the score
    # needs no privilege). The cell then ends "killed", an ordinary observation.
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def tasks_of_uid(uid: int) -> int:
    """Tasks (threads count) owned by ``uid``; RLIMIT_NPROC without our own user namespace
    counts all of them, so the cap is set relative to this count."""
    count = 0
    try:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        count += len(os.listdir(f"/proc/{entry.name}/task"))
                except OSError:
                    pass
    except OSError:
        pass
    return count


def set_cell_cpu_budget(cpu_s: float) -> None:
    """Soft RLIMIT_CPU = CPU used so far + one cell's budget (SIGXCPU ends the process).
    RLIMIT_CPU is cumulative per process, so a fixed limit would end long sessions."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    soft = math.ceil(used + cpu_s)  # whole seconds: the limit is coarse by nature
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
