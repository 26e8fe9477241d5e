"""``tirl report`` (a run as one HTML file) and ``tirl runs`` (a table of the runs in a directory)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from tirl.config import ReportSection

_D = ReportSection()


def report_cmd(
    runs: list[Path] = typer.Argument(..., help="Run directories (several: their curves overlaid, each browsable)."),
    out: Path | None = typer.Option(None, "--out", help="The HTML file to write (default: RUN/report.html; report.html here for several runs)."),
    steps: int = typer.Option(_D.steps, min=1, help="Training steps whose rollouts and trees are embedded, spread over the run."),
    tasks: int = typer.Option(_D.tasks, min=1, help="Tasks per embedded step (each with all its samples)."),
    eval_tasks: int = typer.Option(_D.eval_tasks, min=1, help="Held-out tasks embedded for every evaluation."),
):
    """Write a self-contained HTML report of one or several runs (opens from file://, no server):
    config, evaluations, learning curves, a trajectory browser, rollout trees, evaluations side by side."""
    from tirl.report import write_report

    target = out or (runs[0] / "report.html" if len(runs) == 1 else Path("report.html"))
    r = write_report(runs, target, ReportSection(steps=steps, tasks=tasks, eval_tasks=eval_tasks))
    typer.echo(f"report: {r.path} ({r.bytes / 1e6:.1f} MB, {r.seconds:.1f} s)")


def _acc(value: float | None, step: int | None, final: int | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + (f" (step {step})" if final is not None and step != final else "")


def _wall(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def runs_cmd(directory: Path = typer.Argument(Path("runs"), help="A directory of runs (run.out_dir), or one run.")):
    """List the runs in a directory: recipe, steps, held-out accuracy before / after, wall time, and
    status (running, finished, resumable from a checkpoint, interrupted before one)."""
    from tirl.report.runs import find_runs, read_run

    found = [read_run(p) for p in find_runs(directory)]
    if not found:
        typer.echo(f"no runs in {directory} (a run is a directory with a config.yaml)")
        return
    sft = any(r.cfg.train.sft_first for r in found)
    table = Table(title=f"runs in {directory}")
    for col in ["run", "recipe", "model", "steps", "acc before"] + (["after SFT"] if sft else []) + ["acc after", "wall", "status"]:
        table.add_column(col, justify="right" if col in ("steps", "wall") or col.startswith(("acc", "after")) else "left")
    for r in found:
        before = r.eval_accuracy("eval", first=True)
        after = r.eval_accuracy("eval", first=False)
        model = r.cfg.model.name
        row = [
            r.name,
            r.recipe,
            Path(model).name if "/" in model and Path(model).exists() else model,
            f"{r.steps_done}/{r.cfg.train.steps}",
            _acc(*before) if before[1] == 0 else "-",
        ]
        if sft:
            row.append(_acc(*r.eval_accuracy("eval_sft", first=False)))
        row += [_acc(*after, final=r.cfg.train.steps) if after[1] else "-", _wall(r.wall_s), r.status]
        table.add_row(*row)
    # off a terminal (a pipe, a log file) rich would wrap the table at 80 columns
    Console(width=None if sys.stdout.isatty() else 200).print(table)
