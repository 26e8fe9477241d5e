"""Throughput and latency of the python tool on trivial cells.

Runs ``calls`` cells of ``1+1`` through :class:`PythonSandbox` from ``concurrency``
concurrent asyncio tasks, each reusing its own session (the steady state of a rollout: a
trajectory's later calls). Sessions are created and warmed before timing starts. Repeats
the measurement and reports medians; prints a markdown table.

    python bench/sandbox.py                       # both isolation modes
    python bench/sandbox.py --isolation bwrap --repeats 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass

from tirl.tools.python_sandbox import PythonSandbox, SandboxConfig, bwrap_works
from tirl.types import ToolCall


@dataclass
class Run:
    calls_per_s: float
    p50_ms: float
    p99_ms: float


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def _measure(sandbox: PythonSandbox, calls: int, concurrency: int) -> Run:
    call = ToolCall(name="python", arguments={"code": "1+1"})
    latencies: list[float] = []
    per_task = calls // concurrency

    async def trajectory(i: int) -> None:
        for _ in range(per_task):
            t0 = time.perf_counter()
            obs = await sandbox.run(call, session=f"bench-{i}")
            latencies.append((time.perf_counter() - t0) * 1000)
            if obs.output != "2\n":
                raise RuntimeError(f"unexpected observation: {obs}")

    # Warm-up: create every session (forks) and settle the workers; not timed.
    await asyncio.gather(*(sandbox.run(call, session=f"bench-{i}") for i in range(concurrency)))
    await asyncio.gather(*(trajectory(i) for i in range(concurrency)))
    latencies.clear()
    t0 = time.perf_counter()
    await asyncio.gather(*(trajectory(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return Run(len(latencies) / elapsed, _percentile(latencies, 0.5), _percentile(latencies, 0.99))


def bench(isolation: str, workers: int, concurrency: int, calls: int, repeats: int) -> list[Run]:
    runs = []
    with PythonSandbox(SandboxConfig(workers=workers, isolation=isolation)) as sandbox:
        for _ in range(repeats):
            runs.append(asyncio.run(_measure(sandbox, calls, concurrency)))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isolation", choices=["bwrap", "none", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    modes = ["bwrap", "none"] if args.isolation == "both" else [args.isolation]
    if "bwrap" in modes and not bwrap_works():
        print("bubblewrap does not work here; skipping isolation=bwrap", file=sys.stderr)
        modes.remove("bwrap")
    print(f"workers={args.workers} concurrency={args.concurrency} calls={args.calls} repeats={args.repeats} (medians over repeats)\n")
    print("| isolation | calls/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for mode in modes:
        runs = bench(mode, args.workers, args.concurrency, args.calls, args.repeats)
        print(
            f"| {mode} | {statistics.median(r.calls_per_s for r in runs):.0f} "
            f"| {statistics.median(r.p50_ms for r in runs):.2f} "
            f"| {statistics.median(r.p99_ms for r in runs):.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
