"""One session = one chain of forked processes holding one trajectory's namespace.

The worker (zygote) forks, per session::

    launcher   stays in the worker's namespaces; creates new user, PID and mount (and, without
      |        bubblewrap, network) namespaces, mounts private tmpfs on /tmp and /dev/shm,
      |        forks, waits, and exits with the cell process's status. Killing it ends the
      |        whole session.
    reaper     PID 1 of the new PID namespace: reaps orphans; when it dies the kernel kills
      |        every process in the namespace (pid_namespaces(7)), which is what makes a fork
      |        bomb or a stray daemon impossible to leave behind.
    cell       PID 2: runs the cells. It cannot signal the worker or the host (they have no PID
               in its namespace) nor the reaper (SIGKILL from inside to a namespace init is
               ignored), so the model's ``os.kill(os.getppid(), 9)`` hurts nobody.

Every process sets PR_SET_PDEATHSIG, so the chain dies with the worker. When user namespaces
are unavailable (some containers) the same chain runs without them: the cell gets its own
process group and a directory under ``fallback_tmp``; the worker then kills the group.

The cell process itself is ``cellproc``; its limits are ``limits``.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import signal
import time
from dataclasses import dataclass

from . import cellproc, linux, wire
from .cellproc import EXIT_SETUP_FAILED
from .settings import GuestSettings

SETUP_TIMEOUT_S = 10.0


@dataclass
class Handle:
    """What the worker keeps about a session."""

    leader: int  # pid of the launcher; SIGKILL to it ends the session
    to_cell: int  # write end: requests
    from_cell: int  # read end: replies
    pidfd: int | None  # readable once the launcher exited
    cell_pid: int  # the cell's pid as the worker sees it (only meaningful without a PID ns)
    namespaced: bool
    ready: bool = False  # the cell process has said hello
    tmp_dir: str | None = None  # its directory, when not a private tmpfs: deleted at the end


def _close_fds_except(keep: set[int]) -> None:
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _try_namespaces(settings: GuestSettings) -> tuple[bool, bool]:
    """Enter fresh user/PID/mount(/network) namespaces and mount a private /tmp.

    Returns (namespaced, private_tmp). (False, False) when the kernel refuses new
    namespaces (nothing changed); an error after the unshare is raised: the worker then
    retries this session, and later ones, without namespaces.
    """
    if not settings.session_namespaces:
        return False, False
    uid, gid = os.geteuid(), os.getegid()
    flags = linux.CLONE_NEWUSER | linux.CLONE_NEWPID | linux.CLONE_NEWNS
    if settings.session_netns:
        flags |= linux.CLONE_NEWNET
    try:
        linux.unshare(flags)
    except OSError:
        return False, False
    linux.map_ids(uid, gid)
    try:
        # Nothing we mount may propagate back (mount_namespaces(7)), then a size-capped tmpfs.
        linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE, None)
        if settings.readonly_root:  # without bubblewrap: the host's files, read-only
            linux.remount_readonly(skip=("/proc", "/sys", "/dev", "/tmp"))
        linux.mount("tmpfs", "/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, f"size={settings.tmp_mb}m,mode=1777")
    except OSError:
        return True, False
    try:  # POSIX shared memory and semaphores (multiprocessing) live here: private as well
        linux.mount("tmpfs", "/dev/shm", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, f"size={settings.tmp_mb}m,mode=1777")
    except OSError:
        pass
    return True, True


def _drop_user(settings: GuestSettings) -> None:
    if settings.drop_to_uid is None or os.geteuid() != 0:
        return
    gid = settings.drop_to_gid if settings.drop_to_gid is not None else settings.drop_to_uid
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(settings.drop_to_uid, settings.drop_to_uid, settings.drop_to_uid)
    linux.set_dumpable()


def _exit_code(status: int) -> int:
    """Pass a child's wait status up as an exit code, shell style (128 + signal)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code & 0xFF


class SessionError(RuntimeError):
    """A session's processes could not be started."""


def start(settings: GuestSettings, serial: int) -> Handle:
    """Fork a session chain and return at once; :func:`wait_ready` finishes the start.
    (Split so the worker can fork a spare session and answer the host while it boots.)"""
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    worker = os.getpid()
    pid = os.fork()
    if pid == 0:  # launcher
        try:
            _close_fds_except({2, to_r, from_w})
            _drop_user(settings)
            namespaced, private_tmp = _try_namespaces(settings)
            linux.die_with_parent(worker)
            tmp_dir = None if private_tmp else os.path.join(settings.fallback_tmp, f"session-{worker}-{serial}")
            if tmp_dir is not None:
                os.makedirs(tmp_dir, mode=0o700, exist_ok=True)
            os.chdir(tmp_dir or "/tmp")
            launcher = os.getpid()
            reaper = os.fork()
            if reaper == 0:
                _reaper(settings, 0 if namespaced else launcher, to_r, from_w, namespaced, tmp_dir)
            os.close(to_r)
            os.close(from_w)
            _, status = os.waitpid(reaper, 0)
            os._exit(_exit_code(status))
        except BaseException as exc:
            _report(f"session launcher failed: {exc!r}")
            os._exit(EXIT_SETUP_FAILED)
    os.close(to_r)
    os.close(from_w)
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # kernel < 5.3: the read deadline still bounds the wait
        pass
    return Handle(pid, to_w, from_r, pidfd, 0, False)


def wait_ready(handle: Handle) -> Handle:
    """Wait for the cell process's hello; on failure kill the chain and raise SessionError."""
    if handle.ready:
        return handle
    try:
        hello = wire.read_frame(handle.from_cell, time.monotonic() + SETUP_TIMEOUT_S, handle.pidfd)
        if not hello.get("ready"):
            raise SessionError(str(hello.get("error")))
    except (wire.Closed, wire.Timeout, OSError, SessionError) as exc:
        status = terminate(handle)
        raise SessionError(f"could not start a session process ({exc}; status {status})") from None
    handle.cell_pid = int(hello["pid"])
    handle.namespaced = bool(hello["namespaced"])
    handle.tmp_dir = hello.get("tmp")
    handle.ready = True
    return handle


def launch(settings: GuestSettings, serial: int) -> Handle:
    """Fork a session chain; return once its cell process said it is ready."""
    return wait_ready(start(settings, serial))


KILL_WAIT_S = 5.0


def _wait_exit(handle: Handle, timeout_s: float) -> int | None:
    """The launcher's wait status once it exits within ``timeout_s``, else None."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pid, status = os.waitpid(handle.leader, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid:
            return status
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if handle.pidfd is not None:
            select.select([handle.pidfd], [], [], remaining)
        else:
            time.sleep(min(remaining, 0.005))


def terminate(handle: Handle) -> int | None:
    """SIGKILL the session (the launcher; the kernel takes the rest down through
    PDEATHSIG and the PID namespace), reap the launcher, close our ends. Returns the
    launcher's wait status, None if it could not be collected (never blocks for long)."""
    try:
        if handle.pidfd is not None:  # immune to pid reuse
            signal.pidfd_send_signal(handle.pidfd, signal.SIGKILL)
        else:
            os.kill(handle.leader, signal.SIGKILL)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            _report(f"cannot kill session process {handle.leader}: {exc}")
    if not handle.namespaced and handle.cell_pid > 0:  # no PID namespace: kill its group
        try:
            os.killpg(handle.cell_pid, signal.SIGKILL)
        except OSError:
            pass
    status = _wait_exit(handle, KILL_WAIT_S)
    _close(handle)
    return status


def collect(handle: Handle, grace_s: float = 2.0) -> int | None:
    """The cell process died on its own: give the launcher a moment to pass the cell's exit
    status up (reaper and launcher exit right after it), then make sure all is gone."""
    status = _wait_exit(handle, grace_s)
    if status is None:
        return terminate(handle)
    _close(handle)
    return status


def _close(handle: Handle) -> None:
    for fd in (handle.to_cell, handle.from_cell, handle.pidfd):
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    if handle.tmp_dir:
        shutil.rmtree(handle.tmp_dir, ignore_errors=True)


def _reaper(settings: GuestSettings, expected_ppid: int, to_r: int, from_w: int, namespaced: bool, tmp_dir: str | None) -> None:
    try:
        linux.die_with_parent(expected_ppid)
        me = os.getpid()
        cell = os.fork()
        if cell == 0:
            cellproc.main(settings, me, to_r, from_w, namespaced, tmp_dir)
        os.close(to_r)
        os.close(from_w)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:  # reap everything; leave with the cell's status
            pid, status = os.wait()
            if pid == cell:
                os._exit(_exit_code(status))
    except BaseException as exc:
        _report(f"session reaper failed: {exc!r}")
        os._exit(EXIT_SETUP_FAILED)


def _report(message: str) -> None:
    """One line on the worker's stderr, which the host shows when a worker fails."""
    try:
        os.write(2, f"tirl sandbox: {message}\n".encode())
    except OSError:
        pass
