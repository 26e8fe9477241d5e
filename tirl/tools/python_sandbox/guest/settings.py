"""What the worker process is told at start-up: limits and behaviour, as one JSON object.

The host builds this from ``SandboxConfig`` (whose fields carry the documentation); here it
is only the wire shape, kept in the guest because the worker must not import the framework.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields


@dataclass
class GuestSettings:
    timeout_s: float = 10.0
    cpu_s: float = 10.0
    memory_mb: int = 1024
    max_output_chars: int = 1024
    max_procs: int = 32
    max_open_files: int = 256
    max_file_mb: int = 64
    tmp_mb: int = 64
    traceback_lines: int = 5
    max_sessions: int = 64
    preload: list[str] = field(default_factory=list)
    # Set by the launcher, not by the user:
    drop_to_uid: int | None = None  # run sessions as this uid (the host runs as root, no bubblewrap)
    drop_to_gid: int | None = None
    session_namespaces: bool = True  # user/PID/mount namespaces per session (when the kernel allows)
    session_netns: bool = True  # and an empty network namespace
    readonly_root: bool = True  # and every other mount read-only (bubblewrap does it itself)
    parent_pid: int | None = None  # exit if re-parented away from this pid (no bubblewrap)
    fallback_tmp: str = "/tmp"  # where per-session directories go without a mount namespace

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> GuestSettings:
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})
