"""The ``tirl`` command line."""

from __future__ import annotations

import typer

from tirl.cli.bench_cmd import bench_app
from tirl.cli.curate_cmd import curriculum_cmd, flywheel_cmd, repair_cmd
from tirl.cli.rm_cmd import rm_app
from tirl.cli.rollout_cmd import rollout_cmd
from tirl.cli.tool_cmd import tool_app
from tirl.cli.train_cmd import eval_cmd, sft_cmd, train_cmd

app = typer.Typer(add_completion=False, no_args_is_help=True, help="tirl: RL for tool-integrated reasoning agents.")
app.command("rollout")(rollout_cmd)
app.command("train")(train_cmd)
app.command("sft")(sft_cmd)
app.command("eval")(eval_cmd)
app.command("repair")(repair_cmd)
app.command("flywheel")(flywheel_cmd)
app.command("curriculum")(curriculum_cmd)
app.add_typer(bench_app, name="bench", help="Benchmarks: tirl bench rollout.")
app.add_typer(tool_app, name="tool", help="Try a tool by hand: tirl tool python --code '1+1'.")
app.add_typer(rm_app, name="rm", help="Trajectory reward model: tirl rm train PAIRS --out DIR; tirl rm score DIR FILE.")


@app.command("prepare")
def prepare(model: str = typer.Argument("smollm2-135m-instruct", help="Model alias to convert and cache.")):
    """Convert and cache a built-in model (done automatically on first use)."""
    from tirl.models import resolve_model_path

    typer.echo(resolve_model_path(model))


if __name__ == "__main__":
    app()
