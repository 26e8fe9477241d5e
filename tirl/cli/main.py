"""The ``tirl`` command line."""

from __future__ import annotations

import signal

import typer
from typer.core import TyperGroup

from tirl.cli.bench_cmd import bench_app
from tirl.cli.curate_cmd import curriculum_cmd, flywheel_cmd, repair_cmd
from tirl.cli.report_cmd import report_cmd, runs_cmd
from tirl.cli.rm_cmd import rm_app
from tirl.cli.rollout_cmd import rollout_cmd
from tirl.cli.search_cmd import index_app, serve_app
from tirl.cli.tool_byo_cmd import custom_cmd, mcp_cmd
from tirl.cli.tool_cmd import tool_app
from tirl.cli.train_cmd import eval_cmd, sft_cmd, train_cmd
from tirl.errors import UserError


def one_line(e: BaseException) -> str:
    """A user error as the one line the command line prints."""
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if msg.startswith(("config error:", "error:")) else f"error: {msg}"


class _Commands(TyperGroup):
    """Every command's user errors (tirl.errors.UserError) end as one line and exit code 2; an
    interrupt (Ctrl-C, or SIGTERM, see tirl.__main__) as one line and exit code 130, after the
    command's own cleanup (finally blocks: run-directory lock, sandbox workers) has run."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            typer.echo(one_line(e), err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True, help="tirl: RL for tool-integrated reasoning agents.")
app.command("rollout")(rollout_cmd)
app.command("train")(train_cmd)
app.command("sft")(sft_cmd)
app.command("eval")(eval_cmd)
app.command("repair")(repair_cmd)
app.command("flywheel")(flywheel_cmd)
app.command("curriculum")(curriculum_cmd)
app.command("report")(report_cmd)
app.command("runs")(runs_cmd)
app.add_typer(bench_app, name="bench", help="Benchmarks: tirl bench rollout.")
tool_app.command("mcp")(mcp_cmd)  # tools the user brings (tools.mcp, tools.custom), tried by hand
tool_app.command("custom")(custom_cmd)
app.add_typer(tool_app, name="tool", help="Try a tool by hand: tirl tool python --code '1+1'; tirl tool search --corpus F --query Q.")
app.add_typer(index_app, name="index", help="Search indexes: tirl index build CORPUS --out DIR.")
app.add_typer(serve_app, name="serve", help="Servers: tirl serve retriever --index DIR --port P (the Search-R1 /retrieve API).")
app.add_typer(rm_app, name="rm", help="Trajectory reward model: tirl rm train PAIRS --out DIR; tirl rm score DIR FILE.")


@app.command("prepare")
def prepare(model: str = typer.Argument("smollm2-135m-instruct", help="Model alias to convert and cache.")):
    """Convert and cache a built-in model (done automatically on first use)."""
    from tirl.models import resolve_model_path

    typer.echo(resolve_model_path(model))


def _terminate(signum, frame):
    # SIGTERM (a scheduler's stop, `kill`) is handled as Ctrl-C: by whatever SIGINT handler is in
    # place (asyncio.Runner's cancels the running rollout first), so finally blocks release the
    # run-directory lock and stop the sandbox workers instead of the process vanishing mid-write.
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    app()


if __name__ == "__main__":
    main()
