"""``tirl repair`` (AutoTraj) and ``tirl flywheel`` (ET-Agent): offline data pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from tirl.cli.outputs import prepare_out
from tirl.config import ConfigError, load_config

console = Console(stderr=True)


def _fail(msg: str) -> None:
    typer.echo(msg, err=True)
    raise typer.Exit(2)


def _fitting(fit) -> list:
    tasks = fit.require("training tasks")
    if fit.note():
        console.print(f"[yellow]note:[/] {fit.note('training tasks')}")
    return tasks


def _config(overrides):
    try:
        return load_config(None, list(overrides or []))
    except ConfigError as e:
        _fail(str(e))


def repair_cmd(
    overrides: list[str] | None = typer.Argument(None, help="section.field=value overrides (model.*, task.*, rollout.*, repair.*)."),
    out: Path = typer.Option(Path("runs/repair"), help="Output directory: sft.jsonl, pairs.jsonl, rollouts.jsonl, summary.json."),
    n_tasks: int = typer.Option(32, min=1, help="Training tasks to sample and repair."),
):
    """AutoTraj: sample rollout.group_size trajectories per task, score and triage them, repair the
    low-quality and wrong ones (repairer given the question and the trajectory; its tool calls run
    for real), write the SFT set and preference pairs (repaired over original)."""
    import asyncio

    from tirl.curate.repair import make_repairer, repair_groups
    from tirl.rewards.compose import apply_rewards
    from tirl.rm.pairs import write_pairs
    from tirl.rollout import rollout, write_jsonl
    from tirl.tasks.reference import SOLVERS, is_reference
    from tirl.train import components as C
    from tirl.train.policy import Policy

    cfg = _config(overrides)
    if is_reference(cfg.repair.repairer) and cfg.task.name not in SOLVERS:
        _fail(
            f"repair.repairer={cfg.repair.repairer} repairs {', '.join(SOLVERS)} tasks only (task.name is {cfg.task.name!r}); "
            "use a model or a JSONL of trajectories"
        )
    prepare_out(out)
    tasks = C.tasks(cfg, "train", n_tasks)  # bad task input fails before the model loads
    policy = Policy(cfg)
    policy.model.eval()
    rt = C.build_runtime(cfg, policy.model, policy.tokenizer, seed=cfg.train.seed)
    tasks = _fitting(C.fit(rt, tasks))
    try:
        repairer = make_repairer(cfg.repair.repairer, rt.engine, seed=cfg.train.seed, endpoints=cfg.endpoint)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    console.print(
        f"[bold]tirl repair[/] {len(tasks)} tasks x {cfg.rollout.group_size} samples, repairer {cfg.repair.repairer or 'the policy'} -> {out}"
    )

    async def go():
        try:
            groups = await rollout(rt.engine, rt.protocol, tasks, C.rollout_config(cfg))
            apply_rewards(list(zip(tasks, groups)), C.rewards(cfg, rt.protocol))
            res = await repair_groups(
                tasks, groups, rt.protocol, policy.tokenizer, repairer, cfg.repair, cfg.rollout.max_response_tokens, cfg.rollout.max_turn_tokens
            )
            return groups, res
        finally:
            await rt.aclose()

    groups, res = asyncio.run(go())
    write_jsonl(out / "rollouts.jsonl", (t for g in groups for t in g))
    write_jsonl(out / "sft.jsonl", res.sft)
    write_pairs(out / "pairs.jsonl", res.pairs)
    repairs = [
        {
            "task_id": o.task_id,
            "original_correct": o.original_correct,
            "original_score": o.original_score,
            "correct": o.correct,
            "score": o.score,
            "accepted": o.accepted,
            "text": o.repaired.text,
        }
        for o in res.outcomes
    ]
    (out / "repairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in repairs))
    (out / "summary.json").write_text(json.dumps(res.counts, indent=2))
    c = res.counts
    console.print(
        f"{c['trajectories']} trajectories, {c['correct']} correct; kept {c['kept']}; repaired "
        f"{c['to_repair_correct']} low-quality + {c['to_repair_wrong']} wrong: {c['accepted']} accepted, {c['hard_cases']} hard cases"
    )
    console.print(
        f"SFT set {out / 'sft.jsonl'} ({len(res.sft)}; tirl sft sft.source={out / 'sft.jsonl'}), "
        f"pairs {out / 'pairs.jsonl'} ({len(res.pairs)}; tirl rm train {out / 'pairs.jsonl'})"
    )


def flywheel_cmd(
    overrides: list[str] | None = typer.Argument(None, help="section.field=value overrides (model.*, task.*, rollout.*, flywheel.*)."),
    out: Path = typer.Option(Path("runs/flywheel"), help="Buffer directory (resumes when it exists); rft.jsonl is written here."),
    n_tasks: int = typer.Option(32, min=1, help="Training tasks to evolve."),
):
    """ET-Agent data flywheel: initial rollouts, then flywheel.rounds rounds evolving each task's best
    not-yet-evolved trajectory (redundant-step removal / re-rollout if correct; first-flaw correction
    and hint injection if wrong), continued by the policy with real tool execution. Writes the RFT set."""
    import asyncio

    from tirl.curate.flywheel import rft_set, run_flywheel
    from tirl.engine.base import SamplingParams
    from tirl.judge.llm import ChatModel, make_engine
    from tirl.rollout import write_jsonl
    from tirl.train import components as C
    from tirl.train.policy import Policy

    cfg = _config(overrides)
    prepare_out(out)
    tasks = C.tasks(cfg, "train", n_tasks)
    policy = Policy(cfg)
    policy.model.eval()
    rt = C.build_runtime(cfg, policy.model, policy.tokenizer, seed=cfg.train.seed)
    tasks = _fitting(C.fit(rt, tasks))
    try:
        judge = ChatModel(
            make_engine(cfg.flywheel.judge, rt.engine, seed=cfg.train.seed, endpoints=cfg.endpoint),
            SamplingParams(temperature=0.0, max_new_tokens=cfg.flywheel.judge_max_tokens),
        )
    except ValueError as e:
        _fail(str(e))
    console.print(f"[bold]tirl flywheel[/] {len(tasks)} tasks, {cfg.flywheel.rounds} rounds, judge {cfg.flywheel.judge or 'the policy'} -> {out}")

    async def go():
        try:
            return await run_flywheel(
                tasks, out, rt.engine, judge, rt.protocol, policy.tokenizer, C.rollout_config(cfg), cfg.flywheel, say=console.print
            )
        finally:
            await rt.aclose()

    buf = asyncio.run(go())
    rft = rft_set(buf, rt.protocol)
    write_jsonl(out / "rft.jsonl", rft)
    n_ok = sum(e.correct for e in buf.entries.values())
    console.print(
        f"buffer: {len(buf.entries)} trajectories, {n_ok} correct; RFT set {out / 'rft.jsonl'} ({len(rft)}; tirl sft sft.source={out / 'rft.jsonl'})"
    )


def curriculum_cmd(
    recipe: str | None = typer.Argument("et_agent", help="Recipe (default et_agent)."),
    overrides: list[str] | None = typer.Argument(None, help="section.field=value overrides (pareto.rounds, pareto.n_select, train.steps, ...)."),
):
    """ET-Agent curriculum: pareto.rounds x (group-wise Pareto task sampling, RL with σ decaying over
    the round). Each round's tasks and model live in RUN/roundN; rerunning resumes."""
    from tirl.curate.curriculum import run_curriculum

    overrides = list(overrides or [])
    if recipe and "=" in recipe:
        overrides.insert(0, recipe)
        recipe = "et_agent"
    try:
        cfg = load_config(recipe, overrides)
    except ConfigError as e:
        _fail(str(e))
    console.print(
        f"[bold]tirl curriculum[/] {recipe}: {cfg.pareto.rounds} rounds x ({cfg.pareto.n_candidates} candidates x "
        f"{cfg.pareto.samples_per_task} samples -> {cfg.pareto.n_select} tasks, {cfg.train.steps} RL steps) -> {cfg.run_dir}"
    )
    final = run_curriculum(
        cfg,
        say=console.print,
        on_step=lambda step, m: console.print(
            f"step {step:>4}  reward {m.get('reward/mean', 0):.3f}  acc {m.get('reward/accuracy', 0):.3f}  tools {m.get('rollout/tool_calls', 0):.2f}"
        ),
    )
    console.print(f"final model: {final} (evaluate with: tirl eval --model {final})")
