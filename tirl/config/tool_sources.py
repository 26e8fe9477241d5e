"""Tools a user brings: ``tools.custom`` (any class implementing tirl's ``Tool`` interface) and
``tools.mcp`` (the tools of MCP servers). docs/DESIGN.md, "Bring your own tools and data".

Only the shape of each entry is checked here (a ``module:Class`` path, a command or a URL); the
import, the construction and the server start happen in ``tirl.train.components.build_tools``
(through ``tirl.tools.custom`` and ``tirl.tools.mcp``), before the model loads, so this module
stays as light as the rest of the config.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic import Field, field_validator, model_validator

from tirl.config.base import Section

# package.module:ClassName (the class may be nested: module:Outer.Inner)
_TARGET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class CustomToolSection(Section):
    """One entry of ``tools.custom``: a string ``"package.module:ClassName"`` or a mapping
    ``{target: "package.module:ClassName", kwargs: {...}}``."""

    target: str
    """``package.module:ClassName`` of a class (or a function returning a tool) that implements
    ``tirl.tools.base.Tool``; the module must be importable (installed, or on PYTHONPATH)."""
    kwargs: dict[str, Any] = {}
    """Keyword arguments the class is constructed with."""

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"target": data} if isinstance(data, str) else data

    @field_validator("target")
    @classmethod
    def _target_form(cls, v: str) -> str:
        if not _TARGET.match(v):
            raise ValueError(f"{v!r} is not of the form 'package.module:ClassName'")
        return v


class MCPServerSection(Section):
    """One entry of ``tools.mcp``: an MCP server whose tools the model may call, started over
    stdio (``command``) or reached over streamable HTTP (``url``)."""

    command: list[str] | None = None
    """stdio: the server's command and arguments (a string is split as a shell would), e.g.
    ``["python", "-m", "my_server"]``; tirl starts it with the run and stops it at the end."""
    url: str | None = None
    """Streamable HTTP: the endpoint of a running server, e.g. ``http://127.0.0.1:8000/mcp``."""
    env: dict[str, str] = {}
    """stdio: environment variables for the server, over a minimal default environment
    (PATH, HOME, ...; the SDK does not pass the whole environment). ``$VAR`` is expanded when
    the server starts, so a secret stays out of the saved config."""
    cwd: str | None = None
    """stdio: the server's working directory."""
    headers: dict[str, str] = {}
    """HTTP: headers sent with every request (e.g. ``Authorization: Bearer $TOKEN``; ``$VAR``
    is expanded when connecting)."""
    tools: list[str] | None = None
    """Offer only these of the server's tools (its names, before ``prefix``); None: all."""
    prefix: str = ""
    """Prepended to the server's tool names (``fs_`` gives ``fs_read``), to keep two servers'
    tools, or a server's and tirl's, apart."""
    main_args: dict[str, str] = {}
    """Tag protocol: the argument written between a tool's tags, by tool name (the server's);
    ``""`` means a JSON object of all arguments. Unlisted tools follow the rule in
    ``tirl.tools.mcp.tool.main_arg_for``: the one required string argument, else JSON."""
    timeout_s: float = Field(30.0, gt=0)
    """Wall-clock limit of one call; on expiry the model reads a timeout observation."""
    startup_timeout_s: float = Field(30.0, gt=0)
    """How long the server may take to start and list its tools."""
    max_output_chars: int = Field(2048, ge=1)
    """Observation size; a longer result is cut with a truncation marker."""
    stderr: str | None = None
    """stdio: a file the server's stderr is appended to; None: a temporary file, whose last line
    is quoted when the server fails to start or dies."""

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return shlex.split(v)
            except ValueError as e:  # unbalanced quotes
                raise ValueError(f"cannot split the command {v!r} ({e})") from None
        return v

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http:// or https:// URL")
        return v

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSection:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of command (a stdio server) or url (a streamable-HTTP server)")
        if self.command is not None and not self.command:
            raise ValueError("command is empty")
        return self

    def label(self) -> str:
        """How errors name this server: its command or URL."""
        return self.url if self.url is not None else shlex.join(self.command or [])
