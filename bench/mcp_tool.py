"""Latency and throughput of an MCP tool through tirl (``tools.mcp``), against a real MCP server.

Starts a one-tool MCP server (the SDK's ``MCPServer``, an ``echo`` tool) over stdio through
``open_mcp_tools`` (the path a run takes), times the start (launch, handshake, tools/list), then
``calls`` echo calls through ``MCPTool.run`` from ``concurrency`` concurrent asyncio tasks (the
way trajectories of a rollout call it), after a warm-up; medians over ``repeats``. The same
calls through the SDK's ``mcp.Client`` used directly, on the caller's own loop, are the baseline:
the difference is what tirl adds (the hop to the connection's loop thread, the observation).
Prints a markdown table.

    python bench/mcp_tool.py
    python bench/mcp_tool.py --concurrency 1 --calls 500
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tirl.tools.mcp import MCPServerConfig, open_mcp_tools
from tirl.types import ToolCall

SERVER = '''
from mcp.server.mcpserver import MCPServer

server = MCPServer("bench")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


server.run()
'''


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


async def _measure(echo, calls: int, concurrency: int) -> tuple[float, float, float]:
    """``echo(text) -> str`` called ``calls`` times from ``concurrency`` tasks."""
    latencies: list[float] = []

    async def caller(i: int, n: int) -> None:
        for k in range(n):
            t0 = time.perf_counter()
            out = await echo(f"{i}-{k}")
            latencies.append((time.perf_counter() - t0) * 1e3)
            if out != f"{i}-{k}":
                raise RuntimeError(f"unexpected output: {out!r}")

    await asyncio.gather(*(caller(i, 5) for i in range(concurrency)))  # warm-up
    latencies.clear()
    t0 = time.perf_counter()
    await asyncio.gather(*(caller(i, calls // concurrency) for i in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return len(latencies) / elapsed, _percentile(latencies, 0.5), _percentile(latencies, 0.99)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "server.py"
        script.write_text(SERVER)
        starts, runs, sdk_runs = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            (tool,) = open_mcp_tools(MCPServerConfig(command=[sys.executable, str(script)]))
            starts.append(time.perf_counter() - t0)

            async def via_tirl(text: str) -> str:
                return (await tool.run(ToolCall(name="echo", arguments={"text": text}), session="b")).output

            try:
                runs.append(asyncio.run(_measure(via_tirl, args.calls, args.concurrency)))
            finally:
                asyncio.run(tool.aclose())
            sdk_runs.append(asyncio.run(_sdk(script, args.calls, args.concurrency)))
    print(
        f"(concurrency {args.concurrency}, {args.calls} calls per repeat, medians of {args.repeats}; server start through tirl: {statistics.median(starts):.2f} s)"
    )
    print("| path | calls/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for name, rs in [("tirl MCPTool.run", runs), ("mcp.Client.call_tool directly", sdk_runs)]:
        med = [statistics.median(r[i] for r in rs) for i in range(3)]
        print(f"| {name} | {med[0]:.0f} | {med[1]:.2f} | {med[2]:.2f} |")
    return 0


async def _sdk(script: Path, calls: int, concurrency: int) -> tuple[float, float, float]:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    with open("/dev/null", "w") as devnull:
        async with Client(stdio_client(StdioServerParameters(command=sys.executable, args=[str(script)]), errlog=devnull), cache=None) as client:

            async def echo(text: str) -> str:
                return (await client.call_tool("echo", {"text": text})).content[0].text

            return await _measure(echo, calls, concurrency)


if __name__ == "__main__":
    sys.exit(main())
