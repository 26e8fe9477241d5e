"""A small MCP server for the tests, written with the official SDK's MCPServer (FastMCP in mcp<2).

    python tests/mcp_server.py            # over stdio (the client launches it)
    python tests/mcp_server.py --http P   # streamable HTTP on 127.0.0.1:P, path /mcp

Tools: ``echo`` (one string argument), ``add`` (two integers: no single string argument, so a
tag protocol passes a JSON body), ``count`` (a counter kept by the server, to show that
state lives on the server), ``fail`` (raises: an error result), ``sleep`` (for timeouts) and
``crash`` (the server process exits mid-call). With ``MCP_TEST_PID_FILE`` in its environment
the server writes its process id there, so a test can check that it was stopped.
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("tirl-test")
_counter = {"n": 0}


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def count() -> str:
    """Count the calls made to this tool since the server started."""
    _counter["n"] += 1
    return f"call {_counter['n']}"


@server.tool()
def fail(message: str) -> str:
    """Always raise an error with this message."""
    raise ToolError(message)


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep, then say so."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def crash(code: str) -> str:
    """Exit the server process at once."""
    os._exit(3)


if __name__ == "__main__":
    if os.environ.get("MCP_TEST_PID_FILE"):
        with open(os.environ["MCP_TEST_PID_FILE"], "w") as f:
            f.write(str(os.getpid()))
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
