"""A total memory cap for one sandbox worker and every session it holds: a memory cgroup.

The per-session address-space limit (``SandboxConfig.memory_mb``) bounds one session, but a
worker holds up to ``max_sessions_per_worker`` of them, and a session's tmpfs is not counted
by it. ``SandboxConfig.worker_memory_mb`` caps the sum: each worker starts inside its own
memory cgroup (cgroup v2 ``memory.max``, or v1 ``memory.limit_in_bytes`` on hosts that mount
the v1 memory controller), created under the host process's own cgroup. Swap is capped too
where the kernel exposes it. At the cap the kernel's OOM killer ends a session's process
(sessions raise their ``oom_score_adj``), which the model sees as "killed".

Where no memory cgroup can be created (no controller, not delegated, read-only), the worker
runs without a total cap and the sandbox says so once (``PythonSandbox.notes``); the
per-session limits still hold. The worker joins its cgroup before it execs (a shell that
writes its own pid into ``cgroup.procs``), so every process it starts is inside from the
first instruction.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_counter = 0


@dataclass
class MemoryCap:
    """One worker's memory cgroup."""

    path: Path
    version: int  # 1 or 2

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` started inside the cgroup (the shell joins it, then execs argv)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.procs_file), *argv]

    def usage_bytes(self) -> int:
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        return int((self.path / name).read_text())

    def oom_kills(self) -> int:
        """Processes the kernel killed at the cap (the ``oom_kill`` count of v2's
        memory.events or v1's memory.oom_control)."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for line in (self.path / name).read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def remove(self, wait_s: float = 2.0) -> None:
        """Delete the cgroup once its processes are gone (best effort)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)


def _own_cgroup() -> tuple[int, Path] | None:
    """(version, directory) of this process's memory cgroup, v2 preferred."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    v1 = v2 = None
    for line in lines:
        hier, controllers, rel = line.split(":", 2)
        if hier == "0" and controllers == "":
            v2 = rel
        elif "memory" in controllers.split(","):
            v1 = rel
    if v2 is not None and (CGROUP_ROOT / "cgroup.controllers").exists():
        base = CGROUP_ROOT / v2.lstrip("/")
        try:
            enabled = (base / "cgroup.subtree_control").read_text().split()
        except OSError:
            enabled = []
        if "memory" in enabled:  # delegated to this process's cgroup: children may be capped
            return 2, base
    if v1 is not None and (CGROUP_ROOT / "memory").is_dir():
        return 1, CGROUP_ROOT / "memory" / v1.lstrip("/")
    return None


def _remove_stale(base: Path) -> None:
    """Delete the (empty) cgroups of tirl processes that died without cleaning up (SIGKILL)."""
    try:
        entries = list(base.glob("tirl-sandbox-*"))
    except OSError:
        return
    for d in entries:
        pid = d.name.split("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            MemoryCap(d, 0).remove(0)


def make_cap(limit_mb: int, label: str) -> tuple[MemoryCap | None, str]:
    """A fresh memory cgroup limited to ``limit_mb``, or (None, why not)."""
    global _counter
    found = _own_cgroup()
    if found is None:
        return None, "no memory cgroup controller is available to this process"
    version, base = found
    _remove_stale(base)
    _counter += 1
    path = base / f"tirl-sandbox-{os.getpid()}-{label}-{_counter}"
    limit = str(limit_mb << 20)
    try:
        path.mkdir()
    except OSError as e:
        return None, f"cannot create a memory cgroup under {base} ({e.strerror or e})"
    try:
        if version == 2:
            (path / "memory.max").write_text(limit)
            if (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
        else:
            (path / "memory.limit_in_bytes").write_text(limit)
            memsw = path / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                try:
                    memsw.write_text(limit)  # memory + swap: no escape into swap
                except OSError:
                    pass
    except OSError as e:
        MemoryCap(path, version).remove(0)
        return None, f"cannot set the memory limit of {path} ({e.strerror or e})"
    return MemoryCap(path, version), ""
