"""ET-Agent's iterative behaviour-calibration RL (arXiv 2601.06860 §4.2.2-4.2.3; ALGORITHMS.md §6
Phase 2): ``pareto.rounds`` rounds, each

  2a. sample ``pareto.samples_per_task`` trajectories of ``pareto.n_candidates`` training tasks
      with the current model and keep ``pareto.n_select`` tasks by group-wise Pareto sampling
      (``tirl.curate.pareto``), written to ``ROUND/tasks.jsonl``;
  2b. RL on those tasks from the current model (one ``RLTrainer`` run, so ET-Agent's σ decays
      to 0 within the round), producing ``ROUND/final_model`` for the next round.

Rounds live in ``RUN/round{r}``. A round whose final model exists is skipped, one whose RL run
has a checkpoint is resumed, so an interrupted curriculum continues where it stopped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from tirl.config import Config
from tirl.curate.pareto import select_tasks, write_tasks
from tirl.rewards.compose import apply_rewards
from tirl.rollout import rollout


def pareto_round(cfg: Config, out: Path, seed: int) -> dict:
    """Phase 2a with ``cfg.model.name``: write ``out/tasks.jsonl`` and return selection stats."""
    from tirl.train import components as C
    from tirl.train.policy import Policy

    p = cfg.pareto
    policy = Policy(cfg)
    policy.model.eval()
    rt = C.build_runtime(cfg, policy.model, policy.tokenizer, seed=seed)
    tasks = C.tasks(cfg, "train", p.n_candidates)

    async def go():
        try:
            groups = await rollout(rt.engine, rt.protocol, tasks, C.rollout_config(cfg).model_copy(update={"group_size": p.samples_per_task}))
            apply_rewards(list(zip(tasks, groups)), C.rewards(cfg, rt.protocol))
            return groups
        finally:
            await rt.aclose()

    groups = asyncio.run(go())
    sel = select_tasks(tasks, groups, p.n_select, p.mixed_only, p.qa_threshold)
    if not sel.tasks:
        raise RuntimeError(
            f"Pareto sampling kept no task: none of the {len(tasks)} candidates had mixed outcomes over "
            f"{p.samples_per_task} samples (the model solves all or none); raise pareto.n_candidates or samples_per_task"
        )
    write_tasks(sel.tasks, out / "tasks.jsonl")
    stats = {
        "candidates": sel.n_candidates,
        "mixed": sel.n_mixed,
        "selected": len(sel.tasks),
        "mean_corr_var": sum(s.corr_var for s in sel.stats) / len(sel.stats),
        "mean_tool_var": sum(s.tool_var for s in sel.stats) / len(sel.stats),
    }
    (out / "pareto.json").write_text(json.dumps(stats, indent=2))
    return stats


def run_curriculum(cfg: Config, say: Callable[[str], None] = lambda msg: None, on_step: Callable | None = None) -> Path:
    """All rounds; returns the last round's final model directory."""
    from tirl.config import save_config
    from tirl.train.checkpoint import latest_checkpoint
    from tirl.train.rl_trainer import RLTrainer

    root = cfg.run_dir
    root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, root / "config.yaml")
    model = cfg.model.name
    for r in range(1, cfg.pareto.rounds + 1):
        rdir = root / f"round{r}"
        final = rdir / "final_model"
        if (final / "config.json").exists():
            say(f"round {r}: done earlier ({final})")
            model = str(final)
            continue
        rdir.mkdir(parents=True, exist_ok=True)
        if not (rdir / "tasks.jsonl").exists():
            pcfg = cfg.model_copy(deep=True)
            pcfg.model.name = model
            stats = pareto_round(pcfg, rdir, seed=cfg.train.seed + r)
            say(f"round {r}: Pareto sampling kept {stats['selected']} of {stats['candidates']} tasks ({stats['mixed']} mixed)")
        # the task file keeps its verifier kind per row; the loader's default (math) applies to arith
        rcfg = cfg.model_copy(deep=True)
        rcfg.run.out_dir, rcfg.run.name = str(root), f"round{r}"
        rcfg.task.name = str(rdir / "tasks.jsonl")
        rcfg.task.n_train = min(rcfg.task.n_train, sum(1 for _ in open(rdir / "tasks.jsonl")))
        rcfg.task.n_eval = min(rcfg.task.n_eval, rcfg.task.n_train)
        rcfg.model.name = model
        resume = latest_checkpoint(rdir) is not None
        trainer = RLTrainer(rcfg, resume=resume, overwrite=not resume)  # a round killed before its first checkpoint starts over
        say(f"round {r}: RL on {rcfg.task.n_train} tasks from {model}" + (f" (resuming at step {trainer.step})" if resume else ""))
        res = trainer.train(on_step=on_step, evaluate=False, say=say)
        model = str(res.get("final_model", final))
    return Path(model)
