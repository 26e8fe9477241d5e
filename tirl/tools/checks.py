"""Checks on the tools a run is given, so a tool the user brings (``tools.custom``, ``tools.mcp``)
fails at start-up with one line instead of mid-rollout.

A tool must have what ``tirl.tools.base.Tool`` declares, a name that both protocols can carry
(the tag protocol writes it as a tag: letters, digits, ``_ . -``, and not one of the tags the
protocols already use), a JSON schema of an object, and a ``main_arg`` that is one of its
properties or ``""`` (the tag protocol then reads a JSON object of all arguments between the
tags). Names must be unique across the run's tools.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence

from tirl.errors import UserError
from tirl.tools.base import Tool

TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
# tags the protocols write themselves (tag: think/result/answer; hermes: tool_call/tools)
RESERVED_NAMES = frozenset({"think", "result", "answer", "tool_call", "tools"})
_MEMBERS = ("name", "description", "parameters", "main_arg", "run", "close_session", "aclose")


class ToolSetupError(UserError, ValueError):
    """A configured tool cannot be built or offered (one line naming the config entry)."""


def check_tool(tool: object, where: str) -> Tool:
    """``tool`` if it is a usable tirl Tool, else a ToolSetupError that says what is wrong."""
    what = f"{type(tool).__module__}.{type(tool).__qualname__}"
    missing = [m for m in _MEMBERS if not hasattr(tool, m)]
    if missing:
        raise ToolSetupError(f"{where}: {what} is not a tirl Tool: it has no {', '.join(missing)} (see tirl.tools.base.Tool)")
    name, params, main = tool.name, tool.parameters, tool.main_arg
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise ToolSetupError(
            f"{where}: tool name {name!r} cannot be a tag name: use up to 64 letters, digits, '_', '.', '-', starting with a letter or '_'"
        )
    if name in RESERVED_NAMES:
        raise ToolSetupError(f"{where}: tool name {name!r} is a tag the protocols use ({', '.join(sorted(RESERVED_NAMES))}); rename the tool")
    if not isinstance(tool.description, str):
        raise ToolSetupError(f"{where}: {name}.description must be a string, got {type(tool.description).__name__}")
    if not isinstance(params, dict) or params.get("type") != "object" or not isinstance(params.get("properties", {}), dict):
        raise ToolSetupError(f"{where}: {name}.parameters must be a JSON schema of an object ({{'type': 'object', 'properties': {{...}}}})")
    props = params.get("properties", {})
    if not isinstance(main, str) or (main != "" and main not in props):
        raise ToolSetupError(
            f"{where}: {name}.main_arg {main!r} must be one of its properties ({', '.join(props) or 'none'}) or '' for a JSON object"
        )
    for m in ("run", "close_session", "aclose"):
        if not inspect.iscoroutinefunction(getattr(tool, m)):
            raise ToolSetupError(f"{where}: {name}.{m} must be a coroutine function (async def)")
    return tool  # type: ignore[return-value]


def check_unique(tools: Sequence[Tool]) -> None:
    seen: set[str] = set()
    for t in tools:
        if t.name in seen:
            raise ToolSetupError(f"config error: two tools are called {t.name!r}; rename one (an MCP server's tools take tools.mcp[i].prefix)")
        seen.add(t.name)
