"""Configuration of the Python sandbox (DESIGN.md, "Tools and the sandbox")."""

from __future__ import annotations

from dataclasses import dataclass, field

ISOLATION_MODES = ("auto", "bwrap", "none")


@dataclass
class SandboxConfig:
    """Limits and behaviour of :class:`PythonSandbox`. Defaults suit RL rollouts of math
    problems on a laptop: small limits, many short cells."""

    workers: int = 2
    """Persistent worker processes. Sessions (trajectories) are pinned to one worker each;
    calls on one worker run one at a time, so this is the sandbox's parallelism."""

    timeout_s: float = 10.0
    """Wall-clock limit of one cell. On expiry the session's processes are killed, and its
    variables are lost (the observation says so)."""

    cpu_s: float = 10.0
    """CPU seconds one cell may use (RLIMIT_CPU, moved forward before every cell). Catches
    multi-threaded code that burns more CPU than wall time."""

    memory_mb: int = 1024
    """Address-space limit of a session process (RLIMIT_AS). An allocation beyond it raises
    MemoryError in the model's code, which is an ordinary observation."""

    worker_memory_mb: int = 4096
    """Total memory of one worker with all its sessions and their /tmp (a memory cgroup, see
    ``memcap``); at the cap the kernel kills a session's process ("killed" in its
    observation). 0: no total cap. Where no memory cgroup can be made, a warning says so and
    only the per-session limits hold."""

    max_output_chars: int = 1024
    """Observation size (ALGORITHMS.md §1); longer output is cut with a truncation marker."""

    max_procs: int = 32
    """Processes and threads a session may create (RLIMIT_NPROC in its own user namespace)."""

    max_open_files: int = 256
    """Open file descriptors of a session process (RLIMIT_NOFILE)."""

    max_file_mb: int = 64
    """Largest file a session may write (RLIMIT_FSIZE)."""

    tmp_mb: int = 64
    """Size of each session's private /tmp (a tmpfs, when namespaces are available)."""

    traceback_lines: int = 5
    """Lines of the traceback shown on an exception: the tail, which names the error."""

    isolation: str = "auto"
    """"bwrap": run workers in bubblewrap (no network, read-only system, private /tmp,
    own PID namespace) and fail if it does not work; "none": rlimits, a private directory
    and, where the kernel allows, per-session namespaces, but the filesystem is the host's;
    "auto": bwrap when a self-check passes, else refused with the reason (running the model's
    code without isolation must be asked for by name)."""

    max_sessions_per_worker: int = 64
    """Live sessions per worker; beyond it the least recently used is ended (its next call
    starts fresh and says so). Bounds memory when callers forget ``close_session``."""

    preload: tuple[str, ...] = ()
    """Modules imported once in every worker before sessions fork from it (e.g. "numpy",
    "sympy"), so a cell's ``import`` is free. The modules must be fork-safe."""

    ro_paths: tuple[str, ...] = field(default_factory=tuple)
    """Extra host paths made visible read-only inside bubblewrap (data the code may read).
    The system directories and the Python installation are always visible."""

    startup_timeout_s: float = 60.0
    """How long a worker may take to start (bubblewrap + interpreter + ``preload``)."""

    def validate(self) -> None:
        if self.isolation not in ISOLATION_MODES:
            raise ValueError(f"SandboxConfig.isolation must be one of {ISOLATION_MODES}, got {self.isolation!r}")
        for name in ("workers", "memory_mb", "max_output_chars", "max_procs", "max_open_files", "max_file_mb", "tmp_mb", "max_sessions_per_worker"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SandboxConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.worker_memory_mb < 0:
            raise ValueError(f"SandboxConfig.worker_memory_mb must be >= 0 (0: no cap), got {self.worker_memory_mb!r}")
        for name in ("timeout_s", "cpu_s", "startup_timeout_s"):
            if float(getattr(self, name)) <= 0:
                raise ValueError(f"SandboxConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.traceback_lines < 0:
            raise ValueError(f"SandboxConfig.traceback_lines must be >= 0, got {self.traceback_lines!r}")
