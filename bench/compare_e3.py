"""Zero-RL vs SFT-then-RL vs E3-TIR at the same rollout budget, with ablations of E3-TIR without
AAGD and without branching, and ROI (ALGORITHMS.md §5).

Every run starts from the same model, sees the same task stream (the first ``--expert-set``
training tasks) and samples ``--budget`` trajectories per task per RL step for ``--steps`` steps:

- ``zero_rl``: GRPO from the start model, no expert data;
- ``sft_then_rl``: SFT on the expert's trajectories of all ``--expert-set`` tasks, then GRPO;
- ``e3_tir``: E3-TIR's warm-up (``--warmup-steps``) with at most ``--expert-fraction`` of that
  expert set, then GRPO;
- ``e3_no_aagd`` (``strategy.e3.aagd=never``) and ``e3_no_branch`` (``strategy.e3.branching=false``).

Per run the table reports, on ``--eval-tasks`` held-out tasks x ``--eval-samples`` samples:
accuracy, pass@k (unbiased), tool calls per task; and the run's costs: expert samples and expert
tokens obtained, tokens trained (SFT + on-policy + off-policy expert tokens), rollouts, training
wall time. ROI = (accuracy - start accuracy) / (expert samples / those of sft_then_rl + tokens
trained / those of sft_then_rl), reported as a multiple of sft_then_rl's ROI (``tirl.eval.roi``;
"n/a" when sft_then_rl did not improve on the start model). Results go to ``OUT/results.json``
and ``OUT/results.md``; each run's directory is ``OUT/<run>``.

    python bench/compare_e3.py --quick               # tiny-random, seconds: checks the pipeline
    python bench/compare_e3.py --model smollm2-135m-instruct --steps 40 --budget 8 --difficulty 3 \\
        --expert-set 512 --expert-fraction 0.1 --warmup-steps 20 --eval-tasks 64 --out runs/compare_e3

``--expert`` names the expert source (arith-reference, a rollout JSONL, openai:<endpoint>, a
local model); SFT-then-RL needs arith-reference or a JSONL. ``--set section.field=value``
(repeatable) overrides any config field in every run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from tirl.train.memory import release_memory

RUNS = ("zero_rl", "sft_then_rl", "e3_tir", "e3_no_aagd", "e3_no_branch")
RECIPE = {"zero_rl": "zero_rl", "sft_then_rl": "sft_then_grpo", "e3_tir": "e3_tir", "e3_no_aagd": "e3_tir", "e3_no_branch": "e3_tir"}
ABLATION = {"e3_no_aagd": ["strategy.e3.aagd=never"], "e3_no_branch": ["strategy.e3.branching=false"]}


def expert_budget(args) -> int:
    """E3-TIR's expert samples: the fraction of the SFT expert set (at least 1)."""
    return max(1, round(args.expert_fraction * args.expert_set))


def run_config(args, run: str):
    from tirl.config import load_config

    difficulty = args.difficulty if args.difficulty is None or "," not in args.difficulty else f"[{args.difficulty}]"
    over = [
        f"model.name={args.model}",
        f"run.out_dir={args.out}",
        f"run.name={run}",
        f"train.steps={args.steps}",
        f"train.tasks_per_step={args.tasks_per_step}",
        f"train.seed={args.seed}",
        f"train.eval_samples={args.eval_samples}",
        "train.checkpoint_every=0",
        f"task.name={args.task}",
        f"task.n_eval={args.eval_tasks}",
        f"task.n_train={args.expert_set}",
        f"rollout.group_size={args.budget}",
        f"rollout.max_response_tokens={args.max_tokens}",
        f"rollout.max_turn_tokens={min(args.max_tokens, args.turn_tokens)}",
        f"optim.lr={args.lr}",
    ]
    if difficulty is not None:
        over.append(f"task.difficulty={difficulty}")
    if run == "sft_then_rl":
        if args.expert != "arith-reference" and not args.expert.endswith(".jsonl"):
            raise SystemExit(
                f"sft_then_rl trains on arith-reference or a rollout JSONL, not {args.expert!r}; write the expert set to a JSONL first or drop the run"
            )
        over += ["train.sft_first=true", f"sft.source={args.expert}", f"sft.n_examples={args.expert_set}", f"sft.lr={args.sft_lr}"]
    if run.startswith("e3"):
        over += [
            f"strategy.e3.expert={args.expert}",
            f"strategy.e3.max_expert_samples={expert_budget(args)}",
            f"strategy.e3.warmup_steps={args.warmup_steps}",
            f"strategy.e3.anchors={args.anchors}",
            f"strategy.e3.branches={args.branches}",
        ]
    return load_config(RECIPE[run], over + ABLATION.get(run, []) + list(args.set))


def eval_row(report) -> dict:
    s = report.scalars()
    return {
        "accuracy": report.accuracy,
        **{f"pass@{k}": s.get(f"pass@{k}") for k in (1, 4, 8)},
        "tool_calls_per_task": report.tool_calls_per_task,
    }


def run_one(args, run: str, evaluate_start: bool) -> dict:
    from tirl.train.rl_trainer import RLTrainer

    cfg = run_config(args, run)
    trainer = RLTrainer(cfg)
    out: dict = {"run": run}
    try:
        if evaluate_start:
            out["start"] = eval_row(trainer.evaluate("before"))
        if cfg.train.sft_first:
            hist = trainer.warmup_sft()
            print(f"  {run} SFT: {len(hist)} steps, final loss {hist[-1].loss:.3f}", flush=True)
        t0 = time.perf_counter()
        while trainer.step < cfg.train.steps:
            m = trainer.train_step()
            trainer.log.log(trainer.step, m)
            extra = f", expert tasks {m['e3/tasks_with_expert']:.2f}" if m.get("e3/phase") else ""
            print(
                f"  {run} step {trainer.step}/{cfg.train.steps}: reward {m.get('reward/mean', 0.0):.3f}, rollouts {m.get('rollout/rollouts', 0):.0f}{extra}, {m['time/step_s']:.1f} s",
                flush=True,
            )
        out["rl_wall_s"] = time.perf_counter() - t0
        out.update(eval_row(trainer.evaluate("after")))
        t = trainer.totals
        out.update(
            {
                "expert_samples": int(t["expert_samples"]),
                "expert_tokens": int(t["expert_tokens"]),
                "train_tokens": int(t["train_tokens"] + t["offpolicy_tokens"] + t["sft_tokens"]),
                "rollouts": int(t["rollouts"]),
                "train_wall_s": float(t["wall_s"]),
            }
        )
    finally:
        trainer.close()
    return out


def collect_row(args, run: str, evaluate_start: bool) -> dict:
    """The row of a run that already finished in ``OUT/<run>`` (an interrupted comparison, or runs
    done by separate invocations with the same settings): its saved evaluation trajectories,
    re-scored by ``summarize_eval``, and the cost totals its last metrics line logged."""
    import asyncio
    import json as _json

    from tirl.eval.runner import summarize_eval
    from tirl.protocol import make_protocol
    from tirl.rollout.io import read_jsonl
    from tirl.train import components as C

    cfg = run_config(args, run)
    run_dir = cfg.run_dir
    tasks = C.tasks(cfg, cfg.task.eval_split, cfg.task.n_eval)
    tools = C.build_tools(cfg)
    proto = make_protocol(cfg.tools.protocol, tools, None)

    def report(kind: str):
        files = sorted((run_dir / f"eval_{kind}").glob("*.jsonl"))
        if not files:
            raise SystemExit(f"{run_dir}: no eval_{kind}/ trajectories (did the run finish?)")
        by_task = {t.id: [] for t in tasks}
        for traj in read_jsonl(files[-1]):
            by_task.setdefault(traj.task_id, []).append(traj)
        if len(by_task) != len(tasks):
            raise SystemExit(f"{files[-1]}: tasks differ from this comparison's {len(tasks)} eval tasks (other settings?)")
        return summarize_eval(tasks, [by_task[t.id] for t in tasks], proto, args.eval_samples)

    try:
        out: dict = {"run": run}
        if evaluate_start:
            out["start"] = eval_row(report("before"))
        out.update(eval_row(report("after")))
    finally:
        for t in tools:
            asyncio.run(t.aclose())
    metrics = [_json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    t = {k[len("total/") :]: v for k, v in metrics[-1].items() if k.startswith("total/")}
    if int(metrics[-1].get("step", 0)) != args.steps:
        raise SystemExit(f"{run_dir}: the run stopped at step {metrics[-1].get('step')} of {args.steps}")
    out.update(
        {
            "expert_samples": int(t.get("expert_samples", 0)),
            "expert_tokens": int(t.get("expert_tokens", 0)),
            "train_tokens": int(t.get("train_tokens", 0) + t.get("offpolicy_tokens", 0) + t.get("sft_tokens", 0)),
            "rollouts": int(t.get("rollouts", 0)),
            "train_wall_s": float(t.get("wall_s", 0.0)),
        }
    )
    return out


def add_roi(rows: list[dict], base_score: float) -> None:
    """``roi_x``: each run's ROI as a multiple of sft_then_rl's (None without that run)."""
    from tirl.eval.roi import RunCost, relative_roi

    ref = next((r for r in rows if r["name"] == "sft_then_rl"), None)
    for r in rows:
        if ref is None or r["name"] == "start":
            continue
        x = relative_roi(
            RunCost(r["accuracy"], r["expert_samples"], r["train_tokens"]),
            RunCost(ref["accuracy"], ref["expert_samples"], ref["train_tokens"]),
            base_score,
        )
        r["roi_x"] = None if math.isnan(x) else x


COLUMNS = [
    ("accuracy", "acc", "{:.3f}"),
    ("pass@1", "pass@1", "{:.3f}"),
    ("pass@4", "pass@4", "{:.3f}"),
    ("pass@8", "pass@8", "{:.3f}"),
    ("tool_calls_per_task", "calls/task", "{:.2f}"),
    ("expert_samples", "expert samples", "{}"),
    ("expert_tokens", "expert tokens", "{}"),
    ("train_tokens", "tokens trained", "{}"),
    ("rollouts", "rollouts", "{}"),
    ("train_wall_s", "train s", "{:.1f}"),
    ("roi_x", "ROI (x SFT-then-RL)", "{:.2f}"),
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
    p.add_argument("--steps", type=int, default=20, help="RL steps per run")
    p.add_argument("--budget", type=int, default=8, help="trajectories per task per RL step, the same for every run")
    p.add_argument("--difficulty", default=None, help="arith level(s), e.g. 3 or 3,4 (default: all); pick levels the start model mostly fails")
    p.add_argument(
        "--expert-set", type=int, default=512, help="the SFT expert set: expert trajectories of this many training tasks (also the task pool)"
    )
    p.add_argument("--expert-fraction", type=float, default=0.1, help="share of the expert set E3-TIR may use")
    p.add_argument("--expert", default="arith-reference", help="expert source: arith-reference, a rollout JSONL, openai:<endpoint> or a local model")
    p.add_argument("--warmup-steps", type=int, default=None, help="E3-TIR warm-up steps (default: half of --steps)")
    p.add_argument("--anchors", type=int, default=2, help="E3-TIR anchors per expert trajectory (k)")
    p.add_argument("--branches", type=int, default=2, help="E3-TIR continuations per anchor (b); k * b must be < --budget")
    p.add_argument("--task", default="arith")
    p.add_argument("--tasks-per-step", type=int, default=4)
    p.add_argument("--eval-tasks", type=int, default=64)
    p.add_argument("--eval-samples", type=int, default=8, help="samples per eval task (pass@8 needs 8)")
    p.add_argument("--max-tokens", type=int, default=512, help="response budget per trajectory (policy + tool + expert-prefix tokens)")
    p.add_argument("--turn-tokens", type=int, default=256, help="tokens per generation call")
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--sft-lr", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated, from: " + ", ".join(RUNS))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
    p.add_argument("--out", default="runs/compare_e3")
    p.add_argument("--quick", action="store_true", help="tiny-random, 2 steps, budget 4, 4 eval tasks: checks the pipeline in seconds")
    p.add_argument(
        "--collect", action="store_true", help="train nothing: tabulate the runs already in OUT/<run> (same settings), e.g. after an interruption"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.model, args.steps, args.budget, args.tasks_per_step, args.difficulty = "tiny-random", 2, 4, 2, "1"
        args.eval_tasks, args.eval_samples, args.max_tokens, args.turn_tokens = 2, 2, 140, 16
        args.expert_set, args.expert_fraction, args.anchors, args.branches = 8, 0.25, 1, 2
        args.set = ["tools.sandbox_workers=1", "sft.batch_size=4", *args.set]
    if args.warmup_steps is None:
        args.warmup_steps = max(1, args.steps // 2)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        p.error(f"unknown run(s) {unknown}; choose from {', '.join(RUNS)}")
    if args.budget < 2:
        p.error("--budget must be >= 2 (group-relative advantages need two samples)")
    if any(r.startswith("e3") for r in runs) and args.anchors * args.branches >= args.budget:
        p.error(
            f"--anchors x --branches ({args.anchors * args.branches}) must be < --budget ({args.budget}): E3-TIR's self-exploration comes out of the same budget"
        )
    if not 0 < args.expert_fraction <= 1:
        p.error("--expert-fraction must be in (0, 1]")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows: list[dict] = []
    base = None
    for i, run in enumerate(runs):
        print(f"== {run}: {args.steps} steps x {args.tasks_per_step} tasks x {args.budget} trajectories, model {args.model}", flush=True)
        if args.collect:
            r = collect_row(args, run, evaluate_start=i == 0)
        else:
            r = run_one(args, run, evaluate_start=i == 0)
            release_memory()  # the next run starts from a lean process, not from this one's peak
        if "start" in r:
            base = r.pop("start")
            rows.append({"name": "start", **base})
        rows.append({"name": run, **r})
        # written after every run, so an interrupted comparison keeps what it measured
        (out / "results.json").write_text(json.dumps({"args": vars(args), "e3_expert_samples_max": expert_budget(args), "rows": rows}, indent=2))
    add_roi(rows, base["accuracy"])
    result = {"args": vars(args), "e3_expert_samples_max": expert_budget(args), "rows": rows}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    md = table(rows) + (
        "\n\nROI = (accuracy - start accuracy) / (expert samples / sft_then_rl's + tokens trained / sft_then_rl's),"
        " as a multiple of sft_then_rl's ROI (tirl.eval.roi).\n"
    )
    (out / "results.md").write_text(md)
    print(md)
    return result


if __name__ == "__main__":
    main()
