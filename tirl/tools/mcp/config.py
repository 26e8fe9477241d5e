"""The settings of one MCP server, as the tools layer takes them.

Field for field the ``tools.mcp[i]`` config section (``tirl.config.tool_sources.MCPServerSection``),
with the same defaults; ``tirl.train.components.build_tools`` converts one into the other, and
``tests/test_mcp_tools.py`` checks that the two agree. The tools keep a dataclass of their own so
they stay usable without tirl's config (as the sandbox does).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass
class MCPServerConfig:
    command: list[str] | None = None
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tools: list[str] | None = None
    prefix: str = ""
    main_args: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    startup_timeout_s: float = 30.0
    max_output_chars: int = 2048
    stderr: str | None = None

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server needs exactly one of command (stdio) or url (streamable HTTP)")

    def label(self) -> str:
        return self.url if self.url is not None else shlex.join(self.command or [])
