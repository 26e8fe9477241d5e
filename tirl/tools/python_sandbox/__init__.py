"""The Python tool: a pool of persistent, isolated, limited worker processes.

Files, one job each: ``config`` (SandboxConfig), ``launcher`` (bubblewrap or not, command
line), ``worker`` (host side of one worker process), ``sandbox`` (the Tool), and ``guest/``
(everything that runs inside the sandbox: wire format, the worker loop, session processes,
cell execution and output capture).
"""

from .config import SandboxConfig
from .launcher import SandboxUnavailable, bwrap_works
from .sandbox import PythonSandbox

__all__ = ["PythonSandbox", "SandboxConfig", "SandboxUnavailable", "bwrap_works"]
