"""The ``tools`` section: the tool protocol, which tools a run has, the Python sandbox's
settings (``tools.sandbox``), and the tools a user brings (``tools.custom``, ``tools.mcp``; their
entries are in ``tool_sources.py``).

``tools.sandbox`` mirrors the sandbox's own dataclass
(``tirl.tools.python_sandbox.config.SandboxConfig``) field for field, with the same defaults and
limits; ``tirl.train.components.build_tools`` converts one into the other. The sandbox keeps its
dataclass so it stays usable without tirl's config, and this module does not import the sandbox
so the config stays light (docs/DESIGN.md, "Configuration and CLI"); a test
(``tests/test_config.py``) checks that the two agree.

Four flat keys predate the sub-section and still work as aliases, in recipes, overrides and
saved run configs: ``tools.sandbox_workers`` (= ``tools.sandbox.workers``), ``tools.timeout_s``,
``tools.isolation`` and ``tools.sandbox_worker_memory_mb`` (= ``tools.sandbox.worker_memory_mb``).
They are read and written as attributes too; saved configs hold the ``sandbox`` form only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tirl.config.base import Section
from tirl.config.search import RetrievalSection
from tirl.config.tool_sources import CustomToolSection, MCPServerSection


class SandboxSection(Section):
    """The Python sandbox (``tools.sandbox``; docs/DESIGN.md, "Tools and the sandbox")."""

    workers: int = Field(2, ge=1)
    """Persistent worker processes; sessions (trajectories) are pinned to one each, and a worker
    runs one call at a time, so this is the sandbox's parallelism."""
    timeout_s: float = Field(10.0, gt=0)
    """Wall-clock limit of one cell; on expiry the session's processes are killed (its variables
    are lost, the observation says so)."""
    cpu_s: float = Field(10.0, gt=0)
    """CPU seconds one cell may use (RLIMIT_CPU): catches threaded code that burns more CPU than
    wall time."""
    memory_mb: int = Field(1024, ge=1)
    """Address-space limit of a session process (RLIMIT_AS); beyond it the code gets MemoryError."""
    worker_memory_mb: int = Field(4096, ge=0)
    """Memory of one worker with all its sessions and their /tmp (a memory cgroup); at the cap
    the kernel kills a session's process. 0: no total cap."""
    max_output_chars: int = Field(1024, ge=1)
    """Observation size (ALGORITHMS.md §1); longer output is cut with a truncation marker."""
    max_procs: int = Field(32, ge=1)
    """Processes and threads a session may create (RLIMIT_NPROC in its own user namespace)."""
    max_open_files: int = Field(256, ge=1)
    """Open file descriptors of a session process (RLIMIT_NOFILE)."""
    max_file_mb: int = Field(64, ge=1)
    """Largest file a session may write (RLIMIT_FSIZE)."""
    tmp_mb: int = Field(64, ge=1)
    """Size of each session's private /tmp (a tmpfs, where namespaces are available)."""
    traceback_lines: int = Field(5, ge=0)
    """Lines of the traceback shown on an exception (the tail, which names the error)."""
    isolation: Literal["auto", "bwrap", "none"] = "auto"
    """bwrap: bubblewrap (no network, read-only system, private /tmp) or fail; none: rlimits and,
    where the kernel allows, per-session namespaces on the host's filesystem; auto: bwrap when
    its self-check passes, else refused with the reason (no isolation must be asked for by name)."""
    max_sessions_per_worker: int = Field(64, ge=1)
    """Live sessions per worker; beyond it the least recently used is ended."""
    preload: tuple[str, ...] = ()
    """Modules imported once in every worker before sessions fork from it (e.g. numpy, sympy),
    so a cell's import is free. They must be fork-safe."""
    ro_paths: tuple[str, ...] = ()
    """Extra host paths visible read-only inside bubblewrap (data the code may read)."""
    startup_timeout_s: float = Field(60.0, gt=0)
    """How long a worker may take to start (bubblewrap + interpreter + preload)."""


# flat key of the tools section -> its field in tools.sandbox (kept for recipes and run configs
# written before the sub-section existed)
SANDBOX_ALIASES = {
    "sandbox_workers": "workers",
    "timeout_s": "timeout_s",
    "isolation": "isolation",
    "sandbox_worker_memory_mb": "worker_memory_mb",
}


def _alias(field: str, doc: str) -> property:
    def get(self: ToolsConfig) -> Any:
        return getattr(self.sandbox, field)

    def set_(self: ToolsConfig, value: Any) -> None:
        setattr(self.sandbox, field, value)  # validated by the sandbox section

    return property(get, set_, doc=doc)


class ToolsConfig(Section):
    protocol: Literal["tag", "hermes"] = "tag"
    python: bool = True
    calculator: bool = False
    search: bool | None = None
    """The ``search`` tool (passages of a corpus; ``tools.retrieval`` says which). None: on for
    the tasks that need it (``lookup``), off otherwise."""
    sandbox: SandboxSection = SandboxSection()
    """The Python sandbox's settings (read when ``python`` is on)."""
    retrieval: RetrievalSection = RetrievalSection()
    """Where the search tool looks and how it shows results (read when ``search`` is on)."""
    custom: list[CustomToolSection] = []
    """Tools of the user's own classes: ``"package.module:ClassName"`` or
    ``{target: ..., kwargs: {...}}`` (docs/DESIGN.md, "Bring your own tools and data")."""
    mcp: list[MCPServerSection] = []
    """MCP servers whose tools the model may call (stdio ``command`` or HTTP ``url``)."""

    sandbox_workers = _alias("workers", "Alias of sandbox.workers.")
    timeout_s = _alias("timeout_s", "Alias of sandbox.timeout_s.")
    isolation = _alias("isolation", "Alias of sandbox.isolation.")
    sandbox_worker_memory_mb = _alias("worker_memory_mb", "Alias of sandbox.worker_memory_mb.")

    @model_validator(mode="before")
    @classmethod
    def _flat_aliases(cls, data: Any) -> Any:
        """Move the flat alias keys into ``sandbox``; the same setting given both ways with
        different values is an error rather than a silent choice."""
        if not isinstance(data, dict) or not any(k in data for k in SANDBOX_ALIASES):
            return data
        data = dict(data)
        sandbox = data.get("sandbox", {})
        if isinstance(sandbox, SandboxSection):
            given = {k: getattr(sandbox, k) for k in sandbox.model_fields_set}
            sandbox = sandbox.model_dump()
        elif isinstance(sandbox, dict):
            sandbox = given = dict(sandbox)
        else:
            return data  # not a mapping: the field's own validation names the problem
        for flat, field in SANDBOX_ALIASES.items():
            if flat not in data:
                continue
            value = data.pop(flat)
            if field in given and given[field] != value:
                raise ValueError(
                    f"tools.{flat} ({value!r}) and tools.sandbox.{field} ({given[field]!r}) "
                    f"set the same thing; keep one (tools.{flat} is the old name)"
                )
            sandbox[field] = value
        data["sandbox"] = sandbox
        return data
