"""``tools.mcp``: the tools of MCP servers (Model Context Protocol), through the official ``mcp``
Python SDK. docs/DESIGN.md, "Bring your own tools and data".

``open_mcp_tools(cfg)`` starts (stdio) or reaches (streamable HTTP) one server, lists its tools
and returns one ``MCPTool`` per offered tool; they share the connection, which the last tool's
``aclose`` closes. The ``mcp`` package is imported only when a server is opened.
"""

from __future__ import annotations

from tirl.tools.checks import ToolSetupError, check_tool
from tirl.tools.mcp.config import MCPServerConfig
from tirl.tools.mcp.connection import MCPConnection, MCPStartError
from tirl.tools.mcp.tool import MCPTool, main_arg_for, tag_safe


def open_mcp_tools(cfg: MCPServerConfig, where: str = "tools.mcp") -> list[MCPTool]:
    conn = MCPConnection(cfg, where)
    try:
        offered = {t.name: t for t in conn.remote_tools}
        names = list(offered) if cfg.tools is None else list(cfg.tools)
        listed = ", ".join(offered) or "none"
        unknown = [n for n in names if n not in offered]
        if unknown:
            raise ToolSetupError(f"{conn.where}: the server has no tool {unknown[0]!r} (it offers: {listed})")
        stray = [n for n in cfg.main_args if n not in names]
        if stray:
            raise ToolSetupError(f"{conn.where}: main_args names {stray[0]!r}, which is not an offered tool ({', '.join(names)})")
        if not names:
            raise ToolSetupError(f"{conn.where}: the server offers no tools")
        tools = []
        for n in names:
            spec = offered[n]
            main = cfg.main_args.get(n, main_arg_for(spec.input_schema or {}))
            tools.append(check_tool(MCPTool(conn, spec, cfg, main), f"{conn.where}, tool {n!r}"))
        conn.users = len(tools)
        return tools
    except BaseException:
        conn.close()
        raise


__all__ = ["MCPConnection", "MCPServerConfig", "MCPStartError", "MCPTool", "main_arg_for", "open_mcp_tools", "tag_safe"]
