"""``tirl repair`` (AutoTraj) and ``tirl flywheel`` (ET-Agent): offline data pipelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from tirl.config import ConfigError, load_config

console = Console(stderr=True)


def _fail(msg: str) -> None:
    typer.echo(msg, err=True)
    raise typer.Exit(2)


def _config(overrides):
    try:
        return load_config(None, list(overrides or []))
    except ConfigError as e:
        _fail(str(e))


def repair_cmd(
    overrides: Optional[List[str]] = typer.Argument(None, help="section.field=value overrides (model.*, task.*, rollout.*, repair.*)."),
    out: Path = typer.Option(Path("runs/repair"), help="Output directory: sft.jsonl, pairs.jsonl, rollouts.jsonl, summary.json."),
    n_tasks: int = typer.Option(32, min=1, help="Training tasks to sample and repair."),
):
    """AutoTraj: sample rollout.group_size trajectories per task, score and triage them, repair the
    low-quality and wrong ones (repairer given the question and the trajectory; its tool calls run
    for real), write the SFT set and preference pairs (repaired over original)."""
    import asyncio

    from tirl.curate.repair import repair_groups
    from tirl.judge.llm import make_engine
    from tirl.rewards.compose import apply_rewards
    from tirl.rm.pairs import write_pairs
    from tirl.rollout import rollout, write_jsonl
    from tirl.train import components as C
    from tirl.train.policy import Policy

    cfg = _config(overrides)
    policy = Policy(cfg)
    policy.model.eval()
    rt = C.build_runtime(cfg, policy.model, policy.tokenizer, seed=cfg.train.seed)
    try:
        repairer = make_engine(cfg.repair.repairer, rt.engine, seed=cfg.train.seed)
    except ValueError as e:
        _fail(str(e))
    tasks = C.tasks(cfg, "train", n_tasks)
    console.print(f"[bold]tirl repair[/] {len(tasks)} tasks x {cfg.rollout.group_size} samples, repairer {cfg.repair.repairer or 'the policy'} -> {out}")

    async def go():
        try:
            groups = await rollout(rt.engine, rt.protocol, tasks, C.rollout_config(cfg))
            apply_rewards(list(zip(tasks, groups)), C.rewards(cfg, rt.protocol))
            res = await repair_groups(tasks, groups, rt.protocol, policy.tokenizer, repairer, cfg.repair,
                                      cfg.rollout.max_response_tokens, cfg.rollout.max_turn_tokens)
            return groups, res
        finally:
            await rt.aclose()

    groups, res = asyncio.run(go())
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "rollouts.jsonl", (t for g in groups for t in g))
    write_jsonl(out / "sft.jsonl", res.sft)
    write_pairs(out / "pairs.jsonl", res.pairs)
    repairs = [{"task_id": o.task_id, "original_correct": o.original_correct, "original_score": o.original_score,
                "correct": o.correct, "score": o.score, "accepted": o.accepted, "text": o.repaired.text} for o in res.outcomes]
    (out / "repairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in repairs))
    (out / "summary.json").write_text(json.dumps(res.counts, indent=2))
    c = res.counts
    console.print(f"{c['trajectories']} trajectories, {c['correct']} correct; kept {c['kept']}; repaired "
                  f"{c['to_repair_correct']} low-quality + {c['to_repair_wrong']} wrong: {c['accepted']} accepted, {c['hard_cases']} hard cases")
    console.print(f"SFT set {out / 'sft.jsonl'} ({len(res.sft)}; tirl sft sft.source={out / 'sft.jsonl'}), "
                  f"pairs {out / 'pairs.jsonl'} ({len(res.pairs)}; tirl rm train {out / 'pairs.jsonl'})")
