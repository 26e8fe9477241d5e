"""How a worker process is started: with bubblewrap or without, and with which settings.

Bubblewrap (``bwrap``) gives each worker: no network, a read-only view of the system
directories and the Python installation only (home directories and the rest of the host are
not there), a private writable /tmp as working directory, its own PID/IPC/UTS namespaces,
no capabilities (as root: only those needed to switch sessions to ``nobody`` and to kill
them), and death with its parent (``--die-with-parent``). Whether it works is checked once
per process by running the real command line with ``python -c pass``: in many containers
bwrap is installed but cannot create namespaces.

Without bubblewrap the worker runs as a plain child process in a private temporary
directory. Sessions still get their own user/PID/mount/network namespaces where the kernel
allows it (see ``guest.session``), with the host's filesystem mounted read-only; otherwise
only rlimits and the directory. In both modes a root host runs sessions as ``nobody`` when
it can.

The worker is ``python -I -B -c BOOTSTRAP <guest dir> <settings>``: ``-I`` ignores the
environment and user site, ``-B`` writes no bytecode, and the bootstrap loads the ``guest``
folder by path, so the worker imports no part of the framework.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field

from tirl.errors import UserError

from .config import SandboxConfig
from .guest.settings import GuestSettings
from .memcap import MemoryCap, make_cap

GUEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest")
GUEST_PACKAGE = "tirl_sandbox_guest"
BOOTSTRAP = (
    "import importlib.util, sys\n"
    "d = sys.argv[1]\n"
    f"spec = importlib.util.spec_from_file_location({GUEST_PACKAGE!r}, d + '/__init__.py',"
    " submodule_search_locations=[d])\n"
    "m = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = m\n"
    "spec.loader.exec_module(m)\n"
    f"from {GUEST_PACKAGE}.zygote import main\n"
    "main(sys.argv[1:])\n"
)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
NOBODY = "nobody"


class SandboxUnavailable(UserError, RuntimeError):
    """The requested isolation cannot be provided on this machine."""


@dataclass
class LaunchSpec:
    """Everything needed to start one worker process."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    mode: str  # "bwrap" | "none"
    tmp_dir: str | None = None  # host directory to delete when the worker is gone
    settings: GuestSettings = field(default_factory=GuestSettings)
    cap: MemoryCap | None = None  # the worker's memory cgroup, removed when the worker is gone


def _env() -> dict[str, str]:
    bindir = os.path.dirname(sys.executable)
    return {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        # One thread per BLAS/OpenMP pool: sessions are many and forked, cores are few.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }


def _python_paths() -> list[str]:
    """Directories the interpreter and its packages live in (symlinked and real paths)."""
    candidates = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
    }
    return sorted({os.path.realpath(p) for p in candidates} | {os.path.abspath(p) for p in candidates})


def _visible_paths(config: SandboxConfig) -> list[str]:
    """Host paths to bind read-only besides the system directories: the Python installation,
    the guest code and ``ro_paths``; outermost first, none inside another."""
    paths = sorted({os.path.abspath(p) for p in [*_python_paths(), GUEST_DIR, *config.ro_paths]})
    kept: list[str] = []
    for p in paths:
        inside_system = any(p == d or p.startswith(d + "/") for d in SYSTEM_DIRS)
        if not inside_system and os.path.exists(p) and not any(p.startswith(k + "/") for k in kept):
            kept.append(p)
    return kept


def session_user(mode: str) -> tuple[int, int] | None:
    """(uid, gid) the sessions switch to, or None to keep ours. Never run the model's code as
    root when avoidable: inside bubblewrap the Python installation is made reachable for
    nobody; without bubblewrap only if it already is."""
    if os.geteuid() != 0:
        return None
    if mode == "bwrap" or _usable_by_others(_python_paths()):
        return _nobody()
    return None


def _usable_by_others(paths: list[str]) -> bool:
    """Whether a user without privileges can reach and read these directories."""
    for path in paths:
        path = os.path.realpath(path)
        try:
            if os.stat(path).st_mode & 0o005 != 0o005:
                return False
            parent = os.path.dirname(path)
            while parent != "/":
                if not os.stat(parent).st_mode & 0o001:
                    return False
                parent = os.path.dirname(parent)
        except OSError:
            return False
    return True


_warned: set[str] = set()


def _warn_once(key: str, message: str, stacklevel: int) -> None:
    """Warn once per process, attributed to the code that built the sandbox."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=stacklevel + 1)


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(NOBODY)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534


def bwrap_argv(config: SandboxConfig) -> list[str]:
    """The bubblewrap command line up to (not including) the program to run."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() == 0:
        # As root, no user namespace: the worker keeps CAP_SETUID/CAP_SETGID so each session
        # can drop to nobody, and CAP_KILL to kill them afterwards; nothing else. The kernel
        # never applies RLIMIT_NPROC to uid 0 (copy_process in kernel/fork.c), and nobody
        # cannot read root-only files such as /etc/shadow.
        argv += ["--cap-drop", "ALL"]
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_KILL"):
            argv += ["--cap-add", cap]
    else:
        argv += ["--unshare-user-try"]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    # After the /tmp tmpfs, so an installation or checkout under /tmp is still visible.
    # bwrap creates missing parents of a mount point with mode 0700; a session running as
    # another uid could not traverse them, so create them world-traversable first.
    made: set[str] = {"/", "/tmp"}
    for p in _visible_paths(config):
        parent = os.path.dirname(p)
        chain = []
        while parent not in made and parent != "/":
            chain.append(parent)
            parent = os.path.dirname(parent)
        for d in reversed(chain):
            argv += ["--perms", "0755", "--dir", d]
            made.add(d)
        argv += ["--ro-bind", p, p]
    # bwrap's root is a tmpfs holding the mount points it created: make it read-only too, or
    # a session could write e.g. /home/x there and a later session on this worker read it.
    argv += ["--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]
    for key, value in _env().items():
        argv += ["--setenv", key, value]
    return argv + ["--"]


def _python_argv(settings: GuestSettings) -> list[str]:
    return [sys.executable, "-I", "-B", "-c", BOOTSTRAP, GUEST_DIR, settings.to_json()]


def guest_settings(config: SandboxConfig) -> GuestSettings:
    return GuestSettings(
        timeout_s=config.timeout_s,
        cpu_s=config.cpu_s,
        memory_mb=config.memory_mb,
        max_output_chars=config.max_output_chars,
        max_procs=config.max_procs,
        max_open_files=config.max_open_files,
        max_file_mb=config.max_file_mb,
        tmp_mb=config.tmp_mb,
        traceback_lines=config.traceback_lines,
        max_sessions=config.max_sessions_per_worker,
        preload=list(config.preload),
    )


def launch_spec(config: SandboxConfig, mode: str) -> LaunchSpec:
    """A fresh command line for one worker in ``mode`` ("bwrap" or "none")."""
    settings = guest_settings(config)
    user = session_user(mode)
    if user is not None:
        settings.drop_to_uid, settings.drop_to_gid = user
    if mode == "bwrap":
        settings.session_netns = False  # bubblewrap already removed the network
        settings.readonly_root = False  # and made the filesystem read-only
        settings.fallback_tmp = "/tmp"  # bubblewrap's private tmpfs
        spec = LaunchSpec(bwrap_argv(config) + _python_argv(settings), {}, "/", mode, None, settings)
    else:
        tmp_dir = tempfile.mkdtemp(prefix="tirl-sandbox-")
        if settings.drop_to_uid is not None:
            os.chown(tmp_dir, settings.drop_to_uid, settings.drop_to_gid if settings.drop_to_gid is not None else -1)
        settings.parent_pid = os.getpid()
        settings.fallback_tmp = tmp_dir
        spec = LaunchSpec(_python_argv(settings), _env(), tmp_dir, mode, tmp_dir, settings)
    if config.worker_memory_mb:
        spec.cap, why = make_cap(config.worker_memory_mb, "worker")
        if spec.cap is None:
            _warn_once(
                "memcap",
                f"tirl python sandbox: no total memory cap per worker ({why}); each session keeps its "
                f"own {config.memory_mb} MiB address-space limit (tools.sandbox_worker_memory_mb)",
                stacklevel=3,
            )
        else:
            spec.argv = spec.cap.wrap(spec.argv)
    return spec


@functools.cache
def _bwrap_self_check(argv_prefix: tuple[str, ...]) -> str | None:
    """None when ``bwrap ... python -c pass`` works, else why not."""
    try:
        result = subprocess.run([*argv_prefix, sys.executable, "-I", "-S", "-c", "pass"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if result.returncode != 0:
        return result.stderr.decode(errors="replace").strip() or f"exit code {result.returncode}"
    return None


def resolve_isolation(config: SandboxConfig) -> str:
    """Turn "auto" into "bwrap"; raise SandboxUnavailable when bubblewrap does not work and
    isolation is not explicitly "none"."""
    if config.isolation == "none":
        _warn_if_root("none")
        return "none"
    try:
        reason = _bwrap_self_check(tuple(bwrap_argv(config)))
    except SandboxUnavailable as exc:
        reason = str(exc)
    if reason is None:
        return "bwrap"
    if config.isolation == "bwrap":
        raise SandboxUnavailable(f"isolation='bwrap' was requested but bubblewrap does not work here: {reason}")
    # auto: never fall back silently to running the model's code unisolated (it could read
    # the machine's files and see its processes); that mode must be named explicitly.
    raise SandboxUnavailable(
        f"the python sandbox needs bubblewrap, which does not work here ({reason.splitlines()[0]}); "
        "install it (Debian/Ubuntu: apt-get install bubblewrap) or, to run the model's code without "
        "isolation (resource limits only), set tools.isolation=none"
    )


def _warn_if_root(mode: str) -> None:
    if os.geteuid() == 0 and session_user(mode) is None:
        _warn_once(
            "root",
            "tirl python sandbox: without bubblewrap, sessions run as root because other "
            "users cannot read this Python installation; the process limit is not enforced for "
            "root (the wall-clock limit still ends a fork bomb)",
            stacklevel=4,
        )


def bwrap_works(config: SandboxConfig | None = None) -> bool:
    """True when bubblewrap passes the self-check (used by tests and the CLI)."""
    try:
        return _bwrap_self_check(tuple(bwrap_argv(config or SandboxConfig()))) is None
    except SandboxUnavailable:
        return False
