"""``tirl rollout``: sample trajectories of a model on a task, score them, write them, summarise."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tirl.cli.outputs import prepare_out
from tirl.cli.progress import Counter, make_progress

console = Console(stderr=True)


async def _rollout_job(engine, protocol, tasks, cfg, progress: Progress, on_group: Callable[[int, list], None]) -> list[list]:
    """One task's group at a time is handed to ``on_group`` as soon as it finishes (the engine
    batches across all of them), so an interrupted run keeps what it finished."""
    from tirl.rollout import rollout

    counter = Counter(progress, "rollouts", len(tasks) * cfg.group_size)

    async def one(i: int, task) -> list:
        (group,) = await rollout(engine, protocol, [task], cfg, on_finished=counter)
        on_group(i, group)
        return group

    try:
        return list(await asyncio.gather(*(one(i, t) for i, t in enumerate(tasks))))
    finally:
        for t in protocol.tools.values():
            await t.aclose()


def rollout_cmd(
    model: str = typer.Option("smollm2-135m-instruct", help="Model alias, local directory or hub id."),
    task: str = typer.Option("arith", help="Task source: arith, lookup, champ, or a .jsonl/.parquet file."),
    n_tasks: int = typer.Option(32, min=1, help="Number of tasks."),
    group_size: int = typer.Option(4, min=1, help="Samples per task."),
    out: Path = typer.Option(Path("runs/rollout"), help="Output directory (trajectories.jsonl, summary.json)."),
    split: str = typer.Option("test", help="Task split: train or test."),
    difficulty: int | None = typer.Option(None, help="arith (1-5) or lookup (1-4) level; default: the generator's mix."),
    protocol: str = typer.Option("tag", help="Tool protocol: tag or hermes."),
    max_tool_calls: int = typer.Option(4, min=0, help="Tool calls allowed per trajectory."),
    max_response_tokens: int = typer.Option(512, min=1, help="Token budget after the prompt."),
    temperature: float = typer.Option(1.0, min=0.0, help="Sampling temperature (0 = greedy)."),
    top_p: float = typer.Option(1.0, min=0.0, max=1.0, help="Nucleus sampling threshold."),
    max_batch: int = typer.Option(64, min=1, help="Rows decoded together by the engine."),
    seed: int = typer.Option(0, help="Seed for task selection and sampling."),
    sandbox_workers: int = typer.Option(2, min=1, help="Python sandbox worker processes."),
    search: bool | None = typer.Option(None, "--search/--no-search", help="Offer the search tool too (default: on for lookup)."),
    corpus: str | None = typer.Option(None, help="Corpus the search tool indexes (default for lookup: its generated corpus)."),
    search_url: str | None = typer.Option(None, help="Or a retrieval server the search tool asks (POST URL/retrieve)."),
):
    """Roll out MODEL on N_TASKS tasks x GROUP_SIZE samples with the Python tool (and search, for
    lookup or with --search); write OUT/trajectories.jsonl and print a summary."""
    from tirl.engine import HFEngine, HFEngineConfig
    from tirl.models import load_model
    from tirl.protocol import make_protocol
    from tirl.rewards.compose import apply_rewards
    from tirl.rewards.presets import default_rewards
    from tirl.rollout import RolloutConfig, summarize, write_jsonl
    from tirl.rollout.fit import fit_tasks
    from tirl.rollout.io import trajectory_to_json
    from tirl.tasks import load_tasks
    from tirl.tools import PythonSandbox, SandboxConfig, SearchConfig, SearchTool

    prepare_out(out)
    options = {"difficulty": difficulty} if difficulty is not None else {}
    tasks = load_tasks(task, n=n_tasks, seed=seed, split=split, **options)
    searcher = None
    if search if search is not None else (task == "lookup" or corpus is not None or search_url is not None):
        if corpus is None and search_url is None:
            if task != "lookup":
                raise typer.BadParameter("--search needs --corpus or --search-url (lookup searches its own corpus)")
            from tirl.tasks.lookup import corpus_path

            corpus = str(corpus_path(seed))
        searcher = SearchTool(SearchConfig(corpus=corpus, url=search_url))
    console.print(f"[bold]tirl rollout[/] {len(tasks)} tasks from {task!r} x {group_size} samples, model {model!r}")
    t0 = time.perf_counter()
    lm = load_model(model)
    console.print(f"loaded {model} in {time.perf_counter() - t0:.1f} s")
    sandbox = PythonSandbox(SandboxConfig(workers=sandbox_workers))
    proto = make_protocol(protocol, [sandbox] + ([searcher] if searcher else []), lm.tokenizer)
    engine = HFEngine(lm.model, lm.tokenizer, HFEngineConfig(max_batch=max_batch, seed=seed))
    cfg = RolloutConfig(
        group_size=group_size,
        max_tool_calls=max_tool_calls,
        max_response_tokens=max_response_tokens,
        max_turn_tokens=max_response_tokens,
        temperature=temperature,
        top_p=top_p,
    )
    fit = fit_tasks(tasks, proto, lm.tokenizer, engine.max_context)
    tasks = fit.require()
    if fit.note():
        console.print(f"[yellow]note:[/] {fit.note()}")
    specs = default_rewards(proto)
    partial = out / "trajectories.partial.jsonl"  # finished groups, in the order they finished
    t0 = time.perf_counter()
    with open(partial, "w") as pf:

        def on_group(i: int, group: list) -> None:
            apply_rewards([(tasks[i], group)], specs)
            pf.writelines(json.dumps(trajectory_to_json(tr)) + "\n" for tr in group)
            pf.flush()

        try:
            with make_progress(console) as progress:
                groups = asyncio.run(_rollout_job(engine, proto, tasks, cfg, progress, on_group))
        except KeyboardInterrupt:
            pf.flush()
            console.print(f"interrupted: the finished trajectories are in {partial}")
            raise typer.Exit(130) from None
    wall = time.perf_counter() - t0
    write_jsonl(out / "trajectories.jsonl", (t for g in groups for t in g))
    partial.unlink()
    summary = summarize(groups, wall, lm.tokenizer)
    (out / "summary.json").write_text(json.dumps({"model": model, "task": task, "rollout": cfg.model_dump(), **asdict(summary)}, indent=2))
    table = Table(title=f"rollout summary: {model} on {task}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in summary.rows():
        table.add_row(k, v)
    Console().print(table)
    console.print(f"wrote {out / 'trajectories.jsonl'} and {out / 'summary.json'}")
