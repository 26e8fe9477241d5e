"""The few Linux system calls the sandbox needs and Python's ``os`` module does not expose.

Each helper raises ``OSError`` with the errno on failure, so the caller decides what is
optional (a kernel without user namespaces) and what is fatal. Constants are from
<linux/prctl.h>, <linux/sched.h>, <sys/mount.h> and <linux/capability.h>.
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
# Per-mount flags a less privileged mount namespace must keep on a remount (they are
# "locked", mount_namespaces(7)); we read them from mountinfo and pass them back.
_LOCKED_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - every Linux libc loads
    _libc = None


def _call(name: str, *args: object) -> int:
    fn = getattr(_libc, name, None)
    if fn is None:
        raise OSError(38, f"{name} is not available on this system")  # ENOSYS
    result = fn(*args)
    if result == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")
    return result


def set_pdeathsig(signum: int) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent thread exits.
    Cleared by the kernel on fork and on a change of credentials, so set it last."""
    _call("prctl", PR_SET_PDEATHSIG, ctypes.c_ulong(signum), 0, 0, 0)


def set_child_subreaper() -> None:
    """Orphaned descendants are re-parented to this process (so it can reap them) instead of
    to the init of the PID namespace."""
    _call("prctl", PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), 0, 0, 0)


def set_dumpable() -> None:
    """A uid change makes the process non-dumpable, which makes /proc/self/* owned by root:
    writing our own uid_map then fails with EACCES. Restore the default."""
    _call("prctl", PR_SET_DUMPABLE, ctypes.c_ulong(1), 0, 0, 0)


def set_no_new_privs() -> None:
    """execve() can no longer grant privileges (set-uid binaries, file capabilities)."""
    _call("prctl", PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0)


def unshare(flags: int) -> None:
    _call("unshare", ctypes.c_int(flags))


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _call(
        "mount",
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )


def remount_readonly(skip: tuple[str, ...]) -> None:
    """Make every mount of this (private) mount namespace read-only, except those under
    ``skip``. Mounts that refuse are left as they are."""
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    for line in lines:
        fields = line.split()
        target = fields[4].encode().decode("unicode_escape")  # mountinfo escapes spaces as \040
        if any(target == p or target.startswith(p.rstrip("/") + "/") for p in skip):
            continue
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        for option in fields[5].split(","):
            flags |= _LOCKED_FLAGS.get(option, 0)
        try:
            mount("none", target, None, flags, None)
        except OSError:
            pass


def map_ids(uid: int, gid: int) -> None:
    """Map our own uid/gid 1:1 into a user namespace we just created (user_namespaces(7):
    an unprivileged process may map exactly its own ids, after denying setgroups)."""
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Clear effective, permitted and inheritable capabilities (capset(2) with empty sets).
    A process that created a user namespace holds every capability inside it; the model's
    code should hold none."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _call("capset", ctypes.byref(header), data)


def die_with_parent(expected_ppid: int) -> None:
    """PR_SET_PDEATHSIG(SIGKILL), then make sure the parent did not die before it took
    effect (then we were re-parented). Inside a new PID namespace the parent lives outside
    it and getppid() returns 0."""
    set_pdeathsig(signal.SIGKILL)
    if os.getppid() != expected_ppid:
        os._exit(70)
