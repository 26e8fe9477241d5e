"""Tools the model can call (DESIGN.md, "Tools and the sandbox").

``make_tool(name, **kwargs)`` builds a tool by name: ``make_tool("python", workers=4)``
passes the keyword arguments to the tool's config (SandboxConfig fields for the sandbox,
SearchConfig fields for search: ``make_tool("search", corpus="docs/")``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tirl.tools.base import Tool, schema
from tirl.tools.calculator import Calculator
from tirl.tools.python_sandbox import PythonSandbox, SandboxConfig, SandboxUnavailable
from tirl.tools.search import SearchConfig, SearchTool

TOOLS: dict[str, Callable[..., Tool]] = {
    "python": lambda **kwargs: PythonSandbox(SandboxConfig(**kwargs)),
    "calculator": lambda **kwargs: Calculator(**kwargs),
    "search": lambda **kwargs: SearchTool(SearchConfig(**kwargs)),
}


def make_tool(name: str, **kwargs: Any) -> Tool:
    """A new tool instance by registry name; unknown names list the known ones."""
    try:
        factory = TOOLS[name]
    except KeyError:
        raise ValueError(f"unknown tool {name!r}; known tools: {', '.join(sorted(TOOLS))}") from None
    return factory(**kwargs)


__all__ = ["TOOLS", "Calculator", "PythonSandbox", "SandboxConfig", "SandboxUnavailable", "SearchConfig", "SearchTool", "Tool", "make_tool", "schema"]
