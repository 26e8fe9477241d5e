"""GRPO vs ARPO vs ELPO at an equal rollout budget: train each from the same start model on the
same task stream, then evaluate each on the same held-out tasks.

Every recipe gets ``--budget`` trajectories per task per step: GRPO as ``rollout.group_size``,
ARPO as its budget M (with N = M/2 started from the prompt, ARPO's ratio), ELPO as N_total.
Everything else is shared: model, seed, task source and difficulty, tasks per step, steps,
token limits, learning rate, tools. The start model is evaluated once (the "start" row): every
run starts from it, with the same evaluation seed.

Per run the table reports, on ``--eval-tasks`` tasks x ``--eval-samples`` samples
(``tirl.eval``): accuracy, pass@k for k in {1, 4, 8} (unbiased estimator), maj@8, tool calls
per task (mean calls per sampled trajectory); and for training: trajectories sampled, tool
calls per training trajectory, policy tokens trained, prefix tokens the engine recomputed (when
it counts them) and wall times. Results go to ``OUT/results.json`` and ``OUT/results.md``; each
run's directory (metrics.jsonl, trees/, trajectories/) is ``OUT/<recipe>``.

    python bench/compare_recipes.py --quick            # tiny-random, seconds: checks the pipeline
    python bench/compare_recipes.py --model smollm2-135m-instruct --steps 40 --budget 8 \\
        --difficulty 1 --tasks-per-step 4 --eval-tasks 64 --out runs/compare

``--set section.field=value`` (repeatable) overrides any config field in every run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tirl.train.memory import release_memory

RECIPES = ("grpo", "arpo", "elpo")


def budget_overrides(recipe: str, budget: int) -> list[str]:
    """The same number of trajectories per task for every recipe."""
    if recipe == "arpo":
        return [f"strategy.arpo.budget={budget}", f"strategy.arpo.initial={max(1, budget // 2)}"]
    if recipe == "elpo":
        return [f"strategy.elpo.budget={budget}"]
    return [f"rollout.group_size={budget}"]


def run_config(args, recipe: str):
    from tirl.config import load_config

    difficulty = args.difficulty if args.difficulty is None or "," not in args.difficulty else f"[{args.difficulty}]"
    overrides = [
        f"model.name={args.model}",
        f"run.out_dir={args.out}",
        f"run.name={recipe}",
        f"train.steps={args.steps}",
        f"train.tasks_per_step={args.tasks_per_step}",
        f"train.seed={args.seed}",
        f"train.eval_samples={args.eval_samples}",
        "train.checkpoint_every=0",
        f"task.name={args.task}",
        f"task.n_eval={args.eval_tasks}",
        f"task.n_train={max(args.steps * args.tasks_per_step, 1)}",
        f"rollout.max_response_tokens={args.max_tokens}",
        f"rollout.max_turn_tokens={min(args.max_tokens, args.turn_tokens)}",
        f"optim.lr={args.lr}",
    ]
    if difficulty is not None:
        overrides.append(f"task.difficulty={difficulty}")
    return load_config(recipe, overrides + budget_overrides(recipe, args.budget) + list(args.set))


def eval_row(report) -> dict:
    s = report.scalars()
    return {
        "accuracy": report.accuracy,
        **{f"pass@{k}": s.get(f"pass@{k}") for k in (1, 4, 8)},
        f"maj@{report.n_samples}": s.get(f"maj@{report.n_samples}"),
        "tool_calls_per_task": report.tool_calls_per_task,
        "eval_wall_s": report.wall_s,
    }


def run_recipe(args, recipe: str, evaluate_start: bool) -> dict:
    """Train one recipe for --steps steps and evaluate it; optionally evaluate the start model first."""
    from tirl.train.rl_trainer import RLTrainer

    cfg = run_config(args, recipe)
    trainer = RLTrainer(cfg)
    out: dict = {"recipe": recipe}
    train_calls = train_trajs = 0.0
    try:
        if evaluate_start:
            out["start"] = eval_row(trainer.evaluate("before"))
        t0 = time.perf_counter()
        while trainer.step < cfg.train.steps:
            m = trainer.train_step()
            trainer.log.log(trainer.step, m)
            train_calls += m.get("rollout/tool_calls", 0.0) * m.get("rollout/n", 0.0)
            train_trajs += m.get("rollout/n", 0.0)
            out.setdefault("prefix_tokens_recomputed", 0.0)
            out["prefix_tokens_recomputed"] += m.get("engine/prefix_tokens_recomputed", 0.0)
            print(
                f"  {recipe} step {trainer.step}/{cfg.train.steps}: reward {m.get('reward/mean', 0.0):.3f}, "
                f"rollouts {m.get('rollout/rollouts', 0):.0f}, tree depth {m.get('tree/depth', 0.0):.1f}, {m['time/step_s']:.1f} s",
                flush=True,
            )
        out["train_wall_s"] = time.perf_counter() - t0
        out.update(eval_row(trainer.evaluate("after")))
        out["train_trajectories"] = int(trainer.totals["rollouts"])
        out["train_tool_calls_per_trajectory"] = train_calls / train_trajs if train_trajs else 0.0
        out["train_tokens"] = int(trainer.totals["train_tokens"])
    finally:
        trainer.close()
    return out


COLUMNS = [
    ("accuracy", "acc", "{:.3f}"),
    ("pass@1", "pass@1", "{:.3f}"),
    ("pass@4", "pass@4", "{:.3f}"),
    ("pass@8", "pass@8", "{:.3f}"),
    ("maj@8", "maj@8", "{:.3f}"),
    ("tool_calls_per_task", "calls/task (eval)", "{:.2f}"),
    ("train_trajectories", "train trajs", "{}"),
    ("train_tool_calls_per_trajectory", "calls/traj (train)", "{:.2f}"),
    ("train_tokens", "tokens trained", "{}"),
    ("prefix_tokens_recomputed", "prefix recomputed", "{:.0f}"),
    ("train_wall_s", "train s", "{:.1f}"),
    ("eval_wall_s", "eval s", "{:.1f}"),
]


def table(rows: list[dict]) -> str:
    def cell(row, key, fmt):
        v = row.get(key)
        return "–" if v is None else fmt.format(v)

    lines = ["| run | " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['name']} | " + " | ".join(cell(row, k, f) for k, _, f in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct", help="start model (alias, directory, hub id or a run directory)")
    p.add_argument("--steps", type=int, default=20, help="RL steps per recipe")
    p.add_argument("--budget", type=int, default=8, help="trajectories per task per step, the same for every recipe")
    p.add_argument("--difficulty", default=None, help="arith level(s), e.g. 1 or 1,2 (default: all)")
    p.add_argument("--task", default="arith")
    p.add_argument("--tasks-per-step", type=int, default=4)
    p.add_argument("--eval-tasks", type=int, default=64)
    p.add_argument("--eval-samples", type=int, default=8, help="samples per eval task (pass@8 and maj@8 need 8)")
    p.add_argument("--max-tokens", type=int, default=384, help="response budget per trajectory (policy + tool tokens)")
    p.add_argument("--turn-tokens", type=int, default=256, help="tokens per generation call")
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated, from: " + ", ".join(RECIPES))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--quick", action="store_true", help="tiny-random, 2 steps, budget 4, 4 eval tasks: checks the pipeline in seconds")
    args = p.parse_args(argv)
    if args.quick:
        args.model, args.steps, args.budget, args.tasks_per_step = "tiny-random", 2, 4, 2
        args.eval_tasks, args.max_tokens, args.turn_tokens = 4, 32, 16
        args.set = ["tools.sandbox_workers=1", *args.set]
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        p.error(f"unknown recipe(s) {unknown}; choose from {', '.join(RECIPES)}")
    if args.budget < 2:
        p.error("--budget must be >= 2 (group-relative advantages need two samples)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    for i, recipe in enumerate(recipes):
        print(f"== {recipe}: {args.steps} steps x {args.tasks_per_step} tasks x {args.budget} trajectories, model {args.model}", flush=True)
        r = run_recipe(args, recipe, evaluate_start=i == 0)
        release_memory()  # the next run starts from a lean process, not from this one's peak
        if "start" in r:
            rows.append({"name": "start", **r.pop("start")})
        rows.append({"name": recipe, **r})
    result = {"args": vars(args), "rows": rows}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    md = table(rows)
    (out / "results.md").write_text(md + "\n")
    print(md)
    return result


if __name__ == "__main__":
    main()
