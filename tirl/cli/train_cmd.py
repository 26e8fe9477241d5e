"""``tirl train``, ``tirl sft`` and ``tirl eval``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from tirl.cli.outputs import prepare_out
from tirl.cli.progress import Counter, make_progress
from tirl.config import ConfigError, load_config, resume_config

console = Console(stderr=True)


def _fail(msg: str) -> None:
    typer.echo(msg, err=True)
    raise typer.Exit(2)


def _report_table(title: str, reports: dict) -> Table:
    """Side-by-side eval reports (columns: before / after ...)."""
    table = Table(title=title)
    table.add_column("metric")
    names = list(reports)
    for n in names:
        table.add_column(n, justify="right")
    keys = [k for k, _ in reports[names[0]].rows()]
    rows = {n: dict(r.rows()) for n, r in reports.items()}
    for k in keys:
        table.add_row(k, *[rows[n].get(k, "") for n in names])
    return table


def _step_line(step: int, m: dict) -> str:
    def f(key, fmt="{:.3f}"):
        v = m.get(key)
        return fmt.format(v) if isinstance(v, (int, float)) else "-"

    return (
        f"step {step:>4}  reward {f('reward/mean')}  acc {f('reward/accuracy')}  tools {f('rollout/tool_calls', '{:.2f}')}  "
        f"loss {f('loss/pg', '{:+.4f}')}  ent {f('policy/entropy')}  gnorm {f('policy/grad_norm', '{:.2f}')}  "
        f"{f('time/step_s', '{:.0f}')}s" + (f"  eval acc {f('eval/accuracy')}" if "eval/accuracy" in m else "")
    )


def train_cmd(
    recipe: str | None = typer.Argument(None, help="Recipe name (recipes/NAME.yaml) or a YAML path."),
    overrides: list[str] | None = typer.Argument(None, help="section.field=value overrides, e.g. train.steps=10."),
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="Continue the run in this directory (its own config; train.*/optim.*/engine.*/tools.* overrides allowed) from its newest intact checkpoint.",
    ),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip evaluation before/after training."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in a run directory that already holds a run (its files are deleted)."),
):
    """Train with RL (GRPO family). Example: tirl train grpo train.steps=20 model.name=tiny-random.
    Data-parallel update: torchrun --nproc_per_node M -m tirl train ... (docs/SCALING.md)."""
    from tirl.cluster import make_trainer

    overrides = list(overrides or [])
    if recipe and "=" in recipe:  # no recipe, only overrides
        overrides.insert(0, recipe)
        recipe = None
    applied: list[str] = []
    try:
        if resume is not None:
            if recipe:
                _fail(f"--resume continues the run in {resume} with its own config; drop the recipe name {recipe!r}")
            if overwrite:
                _fail("--resume and --overwrite contradict each other: continue the run, or start it over")
            cfg, applied = resume_config(resume, overrides)
        else:
            cfg = load_config(recipe, overrides)
            if recipe and not cfg.run.recipe:
                cfg.run.recipe = Path(recipe).stem  # recorded in config.yaml for tirl runs and the report
    except ConfigError as e:
        _fail(str(e))
    dp, group = _data_parallel(cfg)
    if dp is not None and not dp.is_main:  # a rank > 0 of torchrun: follow rank 0's commands, print nothing
        _follow(cfg, dp)
        return
    st = cfg.strategy
    per_task = {"arpo": f"{st.arpo.budget} (ARPO tree)", "elpo": f"{st.elpo.budget} (ELPO tree)"}.get(st.name, str(cfg.rollout.group_size))
    # the advantage actually computed: ELPO's is its own (ALGORITHMS.md §4), E3-TIR's warm-up mixes algo.advantage (§5)
    adv = {"elpo": "elpo_hierarchical", "e3": f"e3_hybrid({cfg.algo.advantage})"}.get(st.name, cfg.algo.advantage)
    console.print(
        f"[bold]tirl train[/] {recipe or ''} -> {cfg.run_dir}  ({cfg.model.name}, {cfg.task.name}, {adv}/{cfg.algo.loss}, {cfg.train.steps} steps x {cfg.train.tasks_per_step} tasks x {per_task})"
    )
    if dp is not None:
        console.print(f"data-parallel update: {dp.world_size} ranks ({cfg.cluster.parallel}, {'nccl' if dp.device.type == 'cuda' else 'gloo'})")
    ok = False
    try:
        trainer = make_trainer(cfg, resume=resume is not None, overwrite=overwrite, dp=dp)  # a RunDirError/CheckpointError is one line (cli.main)
        _train(trainer, cfg, resume, no_eval, applied)
        ok = True
    finally:
        if group is not None:
            group.finish(ok)
        elif dp is not None:
            dp.close()


def _data_parallel(cfg):
    """(the torch.distributed process group, the Ray trainer ranks): the group when launched by
    torchrun (the world size is the launcher's) or when Ray starts the other trainer ranks
    (cluster.scheduler=ray, train_world_size > 1); (None, None) for one process."""
    from tirl.train.parallel import init_data_parallel, launch_env

    env = launch_env()
    c = cfg.cluster
    if env is None:
        if c.train_world_size > 1 and c.scheduler == "ray":
            from tirl.cluster.trainers import TrainerGroup

            group = TrainerGroup(cfg)
            return group.dp, group
        if c.train_world_size > 1:
            _fail(
                f"config error: cluster.train_world_size={c.train_world_size} runs {c.train_world_size} trainer processes: "
                f"launch with torchrun --nproc_per_node {c.train_world_size} -m tirl train ... (or let Ray start them: cluster.scheduler=ray)"
            )
        return None, None
    if c.train_world_size not in (1, env.world_size):
        _fail(
            f"config error: cluster.train_world_size={c.train_world_size} but torchrun started {env.world_size} processes; drop the field or make them equal"
        )
    if c.scheduler != "inline":
        _fail("config error: under torchrun the update's ranks are the launcher's; use cluster.scheduler=inline (Ray starts its own trainer ranks)")
    return init_data_parallel(c.dist_timeout_s, fsdp=c.parallel == "fsdp"), None


def _follow(cfg, dp) -> None:
    """Rank > 0: hold the policy replica or shard and run the update steps rank 0 hands out."""
    from tirl.train.ranks import FollowerRank
    from tirl.train.update import NonFiniteUpdate

    try:
        FollowerRank(cfg, dp).run()
    except NonFiniteUpdate:
        raise typer.Exit(2) from None  # rank 0 says what happened
    finally:
        dp.close()


def _train(trainer, cfg, resume, no_eval, applied) -> None:
    """Run the trainer with progress output, then print and save the evaluation tables."""
    from tirl.train.update import NonFiniteUpdate

    for note in trainer.notes:
        console.print(f"[yellow]note:[/] {note}")
    if resume is not None:
        console.print(f"resuming {cfg.run_dir} at step {trainer.step}" + (f" with {', '.join(applied)}" if applied else ""))
    with make_progress(console) as progress:
        bar = progress.add_task("RL steps", total=cfg.train.steps, completed=trainer.step)
        sft_bar = None

        def on_sft(st):
            nonlocal sft_bar
            if sft_bar is None:
                sft_bar = progress.add_task("SFT warm-up", total=st.total_steps or None)
            progress.update(sft_bar, advance=1, description=f"SFT warm-up (loss {st.loss:.3f})")
            if st.step == st.total_steps:
                progress.stop_task(sft_bar)  # its clock stops with it
            if not console.is_terminal and st.step % 10 == 0:  # logs to a file get plain lines
                progress.console.print(f"SFT step {st.step}: loss {st.loss:.3f} ({st.seconds:.1f} s/step)")

        def on_step(step, m):
            progress.update(bar, completed=step)
            progress.console.print(_step_line(step, m))

        try:
            results = trainer.train(on_step=on_step, evaluate=not no_eval, on_sft_step=on_sft, say=progress.console.print)
        except NonFiniteUpdate as e:
            last = trainer.last_checkpoint_step()
            _fail(
                f"error: step {trainer.step + 1}: {e}. The run stopped; "
                + (
                    f"its checkpoint at step {last} is intact: lower optim.lr and continue with --resume {cfg.run_dir}"
                    if last is not None
                    else "it has no checkpoint yet: lower optim.lr and start again with --overwrite"
                )
            )
        except KeyboardInterrupt:
            last = trainer.last_checkpoint_step()
            typer.echo(
                f"interrupted at step {trainer.step}; "
                + (
                    f"continue from its checkpoint at step {last} with: tirl train --resume {cfg.run_dir}"
                    if last is not None
                    else "no checkpoint was written yet (train.checkpoint_every)"
                ),
                err=True,
            )
            raise typer.Exit(130) from None
    stages = ("before", "after_sft", "after")
    reports = {k: results[k] for k in stages if k in results}
    sampled = {k: results[f"{k}_t1"] for k in stages if f"{k}_t1" in results}
    if reports:
        t = cfg.train
        Console().print(_report_table(f"held-out {cfg.task.name} ({cfg.task.n_eval} tasks x {t.eval_samples}, T={t.eval_temperature:g})", reports))
        if sampled:
            Console().print(_report_table(f"held-out {cfg.task.name}, sampled ({cfg.task.n_eval} tasks x {t.eval_sampled}, T=1)", sampled))
        saved = {k: r.to_dict() for k, r in reports.items()} | {f"{k}_t1": r.to_dict() for k, r in sampled.items()}
        path = cfg.run_dir / "eval.json"
        if resume is not None and path.exists():  # a resumed run keeps the evaluations its first part made (before, after SFT)
            try:
                saved = {k: v for k, v in json.loads(path.read_text()).items() if k not in saved} | saved
            except (OSError, ValueError, AttributeError):
                pass  # a torn file: what this part measured is still written
        path.write_text(json.dumps(saved, indent=2))
    if results.get("plot"):
        console.print(f"plots: {results['plot']}")
    if cfg.log.report.write:
        _write_report(cfg)
    console.print(f"run directory: {cfg.run_dir}")


def _write_report(cfg) -> None:
    """The run's HTML report. The run is complete and on disk whatever happens here, so a report
    that fails is a warning naming the command that retries it, not a failed run."""
    from tirl.report import write_report

    try:
        r = write_report([cfg.run_dir], cfg.run_dir / "report.html", cfg.log.report)
    except Exception as e:  # noqa: BLE001 - see the docstring
        msg = " ".join(str(e).split())[:300]
        console.print(f"[yellow]warning:[/] the report was not written ({type(e).__name__}: {msg}); retry with: tirl report {cfg.run_dir}")
        return
    console.print(f"report: {r.path} ({r.bytes / 1e6:.1f} MB, {r.seconds:.1f} s)")


def sft_cmd(
    overrides: list[str] | None = typer.Argument(None, help="section.field=value overrides (sft.*, model.*, task.*)."),
    out: Path = typer.Option(Path("runs/sft"), help="Directory to write the fine-tuned model to."),
):
    """Supervised fine-tuning on reference-solver trajectories or a rollout JSONL (sft.source=FILE)."""
    import asyncio

    from tirl.tasks.reference import is_reference
    from tirl.train import components as C
    from tirl.train.policy import Policy
    from tirl.train.sft import file_trajectories, reference_trajectories, run_sft

    try:
        cfg = load_config(None, list(overrides or []))
    except ConfigError as e:
        _fail(str(e))
    s = cfg.sft
    prepare_out(out)
    if not is_reference(s.source):  # read (and check) the data before the model loads
        trajs = file_trajectories(s.source, s.all_trajectories)[: s.n_examples]
        if not trajs:
            _fail(
                f"error: {s.source} has no trajectories to train on"
                + ("" if s.all_trajectories else " (only correct ones are kept; sft.all_trajectories=true keeps all)")
            )
    policy = Policy(cfg)
    if is_reference(s.source):
        tools = C.build_tools(cfg)
        from tirl.protocol import make_protocol

        proto = make_protocol(cfg.tools.protocol, tools, policy.tokenizer)

        async def go():
            try:
                return await reference_trajectories(C.tasks(cfg, "train", s.n_examples), proto, policy.tokenizer)
            finally:
                for t in tools:
                    await t.aclose()

        trajs = asyncio.run(go())
    console.print(f"SFT on {len(trajs)} trajectories from {s.source}")
    with make_progress(console) as progress:
        bar = progress.add_task("SFT", total=((len(trajs) + s.batch_size - 1) // s.batch_size) * s.epochs)
        run_sft(
            policy.model,
            trajs,
            s,
            policy.tokenizer.pad_token_id,
            cfg.optim.micro_batch_size,
            cfg.optim.bf16,
            cfg.train.seed,
            on_step=lambda st: progress.update(bar, advance=1, description=f"SFT loss {st.loss:.3f}"),
            attention=cfg.optim.attention,
            micro_batch_tokens=cfg.optim.micro_batch_tokens,
            activation_checkpointing=cfg.optim.activation_checkpointing,
        )
    model = policy.model.merge_and_unload() if cfg.model.lora.enabled else policy.model
    model.save_pretrained(out, safe_serialization=True)
    policy.tokenizer.save_pretrained(out)
    console.print(f"saved the fine-tuned model to {out} (use it with model.name={out})")


def eval_cmd(
    overrides: list[str] | None = typer.Argument(
        None,
        help="section.field=value overrides applied last, e.g. endpoints.judge.base_url=http://host:8000/v1 endpoints.judge.model=M (then --judge openai:judge).",
    ),
    model: str = typer.Option("smollm2-135m-instruct", help="Model alias, directory, hub id, or a finished run's directory (its final_model)."),
    task: str = typer.Option("arith", help="Task source."),
    n: int = typer.Option(8, min=1, help="Samples per task."),
    n_tasks: int = typer.Option(64, min=1, help="Held-out tasks."),
    split: str = typer.Option("test", help="Task split."),
    difficulty: int | None = typer.Option(None, help="arith difficulty (1-5)."),
    temperature: float = typer.Option(1.0, min=0.0, help="Sampling temperature (0 = greedy)."),
    max_response_tokens: int = typer.Option(384, help="Token budget after the prompt."),
    protocol: str = typer.Option("tag", help="tag or hermes."),
    out: Path | None = typer.Option(None, help="Write eval.json and trajectories here."),
    judge: str | None = typer.Option(
        None, help="Conciseness judge (ET-Agent): 'policy' (the evaluated model) or a model alias, directory or hub id."
    ),
):
    """Evaluate a model with the same tool loop as training: accuracy, pass@k, maj@k, tool metrics,
    ET-Agent's Efficiency / Successful Execution / Reasoning length (and Conciseness with --judge)."""
    import asyncio

    from tirl.eval.runner import evaluate_async
    from tirl.rollout import write_jsonl
    from tirl.train import components as C
    from tirl.train.policy import Policy
    from tirl.train.resolve import resolve_eval_model

    ov = [
        f"model.name={resolve_eval_model(model)}",
        f"task.name={task}",
        f"task.n_eval={n_tasks}",
        f"task.eval_split={split}",
        f"rollout.temperature={temperature}",
        f"rollout.max_response_tokens={max_response_tokens}",
        f"tools.protocol={protocol}",
    ]
    if difficulty is not None:
        ov.append(f"task.difficulty={difficulty}")
    try:
        cfg = load_config(None, ov + list(overrides or []))
    except ConfigError as e:
        _fail(str(e))
    if out is not None:
        prepare_out(out)
    tasks = C.tasks(cfg, split, n_tasks)  # bad task input fails before the model loads
    tools = C.build_tools(cfg)  # and so does a bad tool (tools.custom, tools.mcp)
    try:
        policy = Policy(cfg)
        policy.model.eval()
        rt = C.build_runtime(cfg, policy.model, policy.tokenizer, seed=cfg.train.seed, tools=tools)
    except BaseException:
        C.close_tools(tools)
        raise
    fit = C.fit(rt, tasks)
    tasks = fit.require("held-out tasks")
    if fit.note():
        console.print(f"[yellow]note:[/] {fit.note('held-out tasks')}")
    ks = [k for k in (1, 4, 8, 16) if k <= n]

    chat_judge = None
    if judge is not None:
        from tirl.judge.llm import ChatModel, make_engine

        try:
            chat_judge = ChatModel(make_engine(judge, rt.engine, seed=cfg.train.seed, endpoints=cfg.endpoint))
        except ValueError as e:
            _fail(str(e))

    async def go(progress):
        try:
            return await evaluate_async(
                rt.engine,
                rt.protocol,
                tasks,
                n,
                C.rollout_config(cfg),
                ks,
                C.rewards(cfg, rt.protocol),
                on_finished=Counter(progress, "eval rollouts", len(tasks) * n),
                judge=chat_judge,
            )
        finally:
            await rt.aclose()

    with make_progress(console) as progress:
        report = asyncio.run(go(progress))
    Console().print(_report_table(f"{model} on {task} ({len(tasks)} tasks x {n})", {"eval": report}))
    if out is not None:
        (out / "eval.json").write_text(json.dumps(report.to_dict(), indent=2))
        write_jsonl(out / "trajectories.jsonl", (t for g in report.groups for t in g))
        console.print(f"wrote {out / 'eval.json'}")
