"""GRPO vs ET-Agent and GRPO vs AutoTraj from the same start model (ALGORITHMS.md §6, §7).

Every pipeline starts from ``--model`` and trains ``--steps`` RL steps of ``--tasks-per-step``
tasks x ``--group-size`` trajectories on the same task source and difficulty:

- ``grpo``: plain GRPO (``recipes/grpo.yaml``);
- ``et_agent``: the data flywheel on ``--data-tasks`` training tasks (``tirl flywheel``, judge and
  refiner ``--judge``), RFT on its filtered output (``tirl sft``), then the curriculum
  (``tirl curriculum et_agent``): ``--rounds`` rounds of group-wise Pareto sampling and RL with
  the efficiency reward, ``--steps / --rounds`` steps each, so the RL budget equals GRPO's;
- ``autotraj``: sample, score, triage and repair ``--data-tasks`` tasks (``tirl repair``,
  repairer ``--judge``), SFT on kept + repaired trajectories, a trajectory reward model on the
  preference pairs (``tirl rm train``; pairwise accuracy on its held-out split and on all pairs
  with ``tirl rm score``), then GRPO with ``R = max(S, S + 0.2 rm)`` (``recipes/autotraj.yaml``).

Each final model (and the start model) is evaluated by ``tirl eval`` on the same ``--eval-tasks``
held-out tasks x ``--eval-samples`` samples: accuracy, pass@k, tool calls per task, ET-Agent's
Efficiency, Successful Execution and Reasoning length (Conciseness with ``--conciseness``, judged
by the evaluated model). Every stage runs as the tirl command a user would type; its wall time is
recorded. Results go to ``OUT/results.json`` and ``OUT/results.md``; the commands to ``OUT/commands.sh``.

    python bench/compare_calibration.py --quick     # tiny-random, about a minute: checks the pipeline
    python bench/compare_calibration.py --model runs/demo/final_model --difficulty 1,2 --steps 8 \\
        --data-tasks 32 --eval-tasks 64 --out runs/compare_calib

``--set section.field=value`` (repeatable) overrides a config field in every stage.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

PIPELINES = ("grpo", "et_agent", "autotraj")


class Runner:
    """Runs tirl commands as subprocesses, logs each, records its wall time."""

    def __init__(self, out: Path):
        self.out, self.wall, self.lines = out, {}, []

    def __call__(self, name: str, argv: list[str]) -> float:
        cmd = [sys.executable, "-m", "tirl", *argv]
        shown = "tirl " + " ".join(shlex.quote(a) for a in argv)
        self.lines.append(shown)
        (self.out / "commands.sh").write_text("\n".join(self.lines) + "\n")
        print(f"  [{name}] {shown}", flush=True)
        t0 = time.perf_counter()
        with open(self.out / f"{name}.log", "w") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
        dt = time.perf_counter() - t0
        if rc != 0:
            tail = (self.out / f"{name}.log").read_text()[-2000:]
            raise SystemExit(f"stage {name} failed (exit {rc}); last output:\n{tail}")
        self.wall[name] = dt
        print(f"  [{name}] done in {dt:.0f} s", flush=True)
        return dt


def common(args) -> list[str]:
    ov = [
        f"task.name={args.task}",
        f"rollout.max_response_tokens={args.max_tokens}",
        f"rollout.max_turn_tokens={min(args.max_tokens, args.turn_tokens)}",
        f"train.seed={args.seed}",
    ]
    if args.difficulty:
        ov.append(f"task.difficulty=[{args.difficulty}]")
    return ov + list(args.set)


def rl(args, model: str, steps: int) -> list[str]:
    return [
        f"model.name={model}",
        f"run.out_dir={args.out}",
        f"train.steps={steps}",
        f"train.tasks_per_step={args.tasks_per_step}",
        f"rollout.group_size={args.group_size}",
        f"optim.lr={args.lr}",
        "train.checkpoint_every=0",
        f"task.n_train={max(args.steps * args.tasks_per_step, args.data_tasks)}",
        f"task.n_eval={args.eval_tasks}",
        f"train.eval_samples={args.eval_samples}",
    ]


def evaluate(args, run: Runner, name: str, model: str) -> dict:
    out = args.out / f"eval_{name}"
    argv = [
        "eval",
        "--model",
        model,
        "--task",
        args.task,
        "--n",
        str(args.eval_samples),
        "--n-tasks",
        str(args.eval_tasks),
        "--max-response-tokens",
        str(args.max_tokens),
        "--out",
        str(out),
    ]
    if args.conciseness:
        argv += ["--judge", "policy"]
    run(f"eval_{name}", argv + common(args)[1:])
    return _eval_row(json.loads((out / "eval.json").read_text()), run.wall[f"eval_{name}"])


def saved_eval(args, files: list[Path]) -> dict:
    """The metrics of an evaluation an earlier run saved (its trajectories), recomputed with
    ``summarize_eval`` on the tasks this script evaluates on; refuses files that do not match."""
    import asyncio

    from tirl.config import load_config
    from tirl.eval.runner import summarize_eval
    from tirl.protocol import make_protocol
    from tirl.rollout.io import read_jsonl
    from tirl.train import components as C

    cfg = load_config(None, [f"task.n_eval={args.eval_tasks}", *common(args)])
    tasks = C.tasks(cfg, cfg.task.eval_split, args.eval_tasks)
    by_task: dict[str, list] = {t.id: [] for t in tasks}
    for f in files:
        for traj in read_jsonl(f):
            if traj.task_id not in by_task:
                raise SystemExit(f"{f}: task {traj.task_id} is not one of this script's {len(tasks)} eval tasks (other --eval-tasks/--difficulty?)")
            by_task[traj.task_id].append(traj)
    groups = [by_task[t.id] for t in tasks]
    if any(len(g) != args.eval_samples for g in groups):
        raise SystemExit(f"{files}: expected {args.eval_samples} samples for each of {len(tasks)} tasks, got {sorted({len(g) for g in groups})}")
    tools = C.build_tools(cfg)
    try:
        r = summarize_eval(tasks, groups, make_protocol(cfg.tools.protocol, tools, None), args.eval_samples).to_dict()
    finally:
        for t in tools:
            asyncio.run(t.aclose())
    return _eval_row(r, None)


def _eval_row(r: dict, wall: float | None) -> dict:
    return {
        "accuracy": r["accuracy"],
        **{f"pass@{k}": r["pass_at_k"].get(str(k)) for k in (1, 4, 8)},
        "tool_calls_per_task": r["tool_calls_per_task"],
        "efficiency": r["efficiency"],
        "successful_execution": r["successful_execution"],
        "reasoning_length": r["reasoning_length"],
        "conciseness": r.get("conciseness"),
        "policy_tokens": r["mean_policy_tokens"],
        "eval_wall_s": wall,
    }


def grpo(args, run: Runner) -> tuple[str, dict]:
    run("grpo_rl", ["train", "grpo", "--no-eval", *rl(args, args.model, args.steps), "run.name=grpo", *common(args)])
    return str(args.out / "grpo" / "final_model"), {}


def et_agent(args, run: Runner) -> tuple[str, dict]:
    fw = args.out / "flywheel"
    judge = [] if args.judge == "policy" else [f"flywheel.judge={args.judge}"]
    run(
        "et_flywheel",
        [
            "flywheel",
            "--n-tasks",
            str(args.data_tasks),
            "--out",
            str(fw),
            f"model.name={args.model}",
            f"flywheel.rounds={args.flywheel_rounds}",
            *judge,
            *common(args),
        ],
    )
    n_rft = sum(1 for line in (fw / "rft.jsonl").read_text().splitlines() if line.strip())
    rft = args.out / "et_rft"
    if n_rft:
        run(
            "et_rft",
            [
                "sft",
                "--out",
                str(rft),
                f"model.name={args.model}",
                f"sft.source={fw / 'rft.jsonl'}",
                f"sft.n_examples={n_rft}",
                f"sft.lr={args.sft_lr}",
                *common(args),
            ],
        )
    else:
        print(f"  the flywheel kept no trajectory for RFT ({fw / 'rft.jsonl'} is empty): the curriculum starts from {args.model}", flush=True)
        rft = args.model
    per_round = max(1, args.steps // args.rounds)
    run(
        "et_curriculum",
        [
            "curriculum",
            "et_agent",
            *rl(args, str(rft), per_round),
            "run.name=et_agent",
            f"pareto.rounds={args.rounds}",
            f"pareto.n_candidates={args.pareto_candidates}",
            f"pareto.n_select={args.pareto_select}",
            *common(args),
        ],
    )
    buf = [json.loads(x) for x in (fw / "buffer.jsonl").read_text().splitlines() if x.strip()] if (fw / "buffer.jsonl").exists() else []
    pareto = [json.loads((args.out / "et_agent" / f"round{r}" / "pareto.json").read_text()) for r in range(1, args.rounds + 1)]
    return str(args.out / "et_agent" / f"round{args.rounds}" / "final_model"), {
        "flywheel_trajectories": len(buf),
        "rft_examples": n_rft,
        "rl_steps": per_round * args.rounds,
        "pareto_selected": [p["selected"] for p in pareto],
        "pareto_mixed": [p["mixed"] for p in pareto],
    }


def autotraj(args, run: Runner) -> tuple[str, dict]:
    rep = args.out / "repair"
    repairer = [] if args.judge == "policy" else [f"repair.repairer={args.judge}"]
    run(
        "at_repair",
        [
            "repair",
            "--n-tasks",
            str(args.data_tasks),
            "--out",
            str(rep),
            f"model.name={args.model}",
            f"rollout.group_size={args.repair_samples}",
            "rollout.max_tool_calls=3",
            *repairer,
            *common(args),
        ],
    )
    counts = json.loads((rep / "summary.json").read_text())
    n_sft = sum(1 for line in (rep / "sft.jsonl").read_text().splitlines() if line.strip())
    n_pairs = sum(1 for line in (rep / "pairs.jsonl").read_text().splitlines() if line.strip())
    extra: dict = {"repair": counts, "sft_examples": n_sft, "pairs": n_pairs}
    start = args.model
    if n_sft:
        start = str(args.out / "autotraj_sft")
        run(
            "at_sft",
            [
                "sft",
                "--out",
                start,
                f"model.name={args.model}",
                f"sft.source={rep / 'sft.jsonl'}",
                f"sft.n_examples={n_sft}",
                f"sft.lr={args.sft_lr}",
                *common(args),
            ],
        )
    if n_pairs < 2:
        raise SystemExit(f"tirl repair produced {n_pairs} preference pair(s); the reward model needs at least 2 (raise --data-tasks)")
    rm = args.out / "autotraj_rm"
    run(
        "at_rm_train",
        [
            "rm",
            "train",
            str(rep / "pairs.jsonl"),
            "--out",
            str(rm),
            f"model.name={args.model}",
            f"rm.epochs={args.rm_epochs}",
            f"rm.val_fraction={args.rm_val_fraction}",
        ],
    )
    extra["rm"] = json.loads((rm / "train_summary.json").read_text())
    run("at_rm_score", ["rm", "score", str(rm), str(rep / "pairs.jsonl")])
    score_line = [x for x in (args.out / "at_rm_score.log").read_text().splitlines() if x.startswith("{")]
    extra["rm_all_pairs"] = json.loads(score_line[-1]) if score_line else None
    run("at_rl", ["train", "autotraj", "--no-eval", *rl(args, start, args.steps), "run.name=autotraj", f"reward.rm.path={rm}", *common(args)])
    return str(args.out / "autotraj" / "final_model"), extra


COLUMNS = (
    ("accuracy", "accuracy", "{:.3f}"),
    ("pass@1", "pass@1", "{:.3f}"),
    ("pass@4", "pass@4", "{:.3f}"),
    ("pass@8", "pass@8", "{:.3f}"),
    ("tool_calls_per_task", "calls/task", "{:.2f}"),
    ("efficiency", "Efficiency", "{:.3f}"),
    ("successful_execution", "Succ. exec.", "{:.3f}"),
    ("reasoning_length", "Reas. len.", "{:.2f}"),
    ("conciseness", "Conciseness", "{:.3f}"),
    ("policy_tokens", "tokens/traj", "{:.0f}"),
    ("wall_s", "pipeline s", "{:.0f}"),
)


def table(rows: list[dict]) -> str:
    head = "| run | " + " | ".join(c[1] for c in COLUMNS) + " |\n|---|" + "---:|" * len(COLUMNS) + "\n"
    return head + "".join(
        "| " + r["name"] + " | " + " | ".join("-" if r.get(k) is None else f.format(r[k]) for k, _, f in COLUMNS) + " |\n" for r in rows
    )


def parser() -> argparse.ArgumentParser:
    """The options of every pipeline stage (bench/reproduce.py starts from their defaults)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct", help="start model of every pipeline (alias, directory, hub id)")
    p.add_argument("--steps", type=int, default=8, help="RL steps per pipeline (ET-Agent: split over its rounds)")
    p.add_argument("--tasks-per-step", type=int, default=4)
    p.add_argument("--group-size", type=int, default=8, help="trajectories per task per RL step")
    p.add_argument("--data-tasks", type=int, default=32, help="training tasks for the flywheel and for repair")
    p.add_argument("--flywheel-rounds", type=int, default=1, help="flywheel evolution rounds")
    p.add_argument("--rounds", type=int, default=2, help="ET-Agent curriculum rounds (Pareto sampling + RL)")
    p.add_argument("--pareto-candidates", type=int, default=16, help="tasks sampled per round for Pareto selection")
    p.add_argument("--pareto-select", type=int, default=8, help="tasks kept per round")
    p.add_argument("--repair-samples", type=int, default=2, help="AutoTraj samples per task before triage")
    p.add_argument("--rm-epochs", type=int, default=2)
    p.add_argument("--rm-val-fraction", type=float, default=0.25, help="held-out share of the preference pairs (task-disjoint) for pairwise accuracy")
    p.add_argument("--judge", default="policy", help="judge/refiner/repairer: policy, a local model, or openai:<endpoint>")
    p.add_argument("--conciseness", action="store_true", help="also judge Conciseness in eval (the evaluated model is the judge)")
    p.add_argument("--difficulty", default=None, help="arith level(s), e.g. 1,2")
    p.add_argument("--task", default="arith")
    p.add_argument("--eval-tasks", type=int, default=64)
    p.add_argument("--eval-samples", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--turn-tokens", type=int, default=256)
    p.add_argument("--lr", type=float, default=5e-6)
    p.add_argument("--sft-lr", type=float, default=2e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=",".join(PIPELINES), help="comma-separated, from: " + ", ".join(PIPELINES))
    p.add_argument("--no-start-eval", action="store_true", help="skip evaluating the start model")
    p.add_argument(
        "--grpo-run",
        type=Path,
        default=None,
        help="take the start and grpo rows from a bench/compare_recipes.py GRPO run directory (its saved eval_before/eval_after "
        "trajectories; same start model, steps, budget and eval settings) instead of running them",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every stage")
    p.add_argument("--out", type=Path, default=Path("runs/compare_calib"))
    p.add_argument("--quick", action="store_true", help="tiny-random, 2 steps, 4 data tasks, 4 eval tasks, grpo and et_agent: checks the pipeline")
    return p


def quick(args) -> None:
    """The CI-size settings of ``--quick`` (tiny-random, seconds per stage)."""
    args.model, args.steps, args.tasks_per_step, args.group_size, args.data_tasks = "tiny-random", 2, 2, 4, 4
    args.eval_tasks, args.eval_samples, args.max_tokens, args.turn_tokens, args.rounds = 4, 2, 32, 16, 2
    args.pareto_candidates, args.pareto_select, args.rm_epochs = 4, 2, 1
    args.set = ["tools.sandbox_workers=1", "flywheel.judge_max_tokens=16", "rm.max_tokens=256", "pareto.mixed_only=false", *args.set]


def main(argv: list[str] | None = None) -> dict:
    p = parser()
    args = p.parse_args(argv)
    if args.quick:
        quick(args)
        if args.runs == ",".join(PIPELINES):
            args.runs = "grpo,et_agent"  # a random model never writes a correct repair, so AutoTraj gets no pairs
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if unknown := [r for r in runs if r not in PIPELINES]:
        p.error(f"unknown run(s) {unknown}; choose from {', '.join(PIPELINES)}")
    if args.steps < args.rounds and "et_agent" in runs:
        p.error(f"--steps ({args.steps}) must be >= --rounds ({args.rounds}): each curriculum round trains at least one step")
    args.out.mkdir(parents=True, exist_ok=True)
    run = Runner(args.out)
    rows = []
    if args.grpo_run is not None:
        files = {k: sorted((args.grpo_run / f"eval_{k}").glob("*.jsonl")) for k in ("before", "after")}
        if not files["before"] or not files["after"]:
            p.error(f"--grpo-run {args.grpo_run}: no eval_before/ and eval_after/ trajectories")
        rows.append({"name": "start", **saved_eval(args, files["before"][-1:])})
        m = [json.loads(x) for x in (args.grpo_run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        rows.append(
            {"name": "grpo", **saved_eval(args, files["after"][-1:]), "wall_s": sum(x.get("time/step_s", 0.0) for x in m), "from": str(args.grpo_run)}
        )
        runs = [r for r in runs if r != "grpo"]
    elif not args.no_start_eval:
        rows.append({"name": "start", **evaluate(args, run, "start", args.model)})
    build = {"grpo": grpo, "et_agent": et_agent, "autotraj": autotraj}
    for name in runs:
        print(f"== {name} from {args.model}", flush=True)
        before = set(run.wall)
        model, extra = build[name](args, run)
        stages = {k: round(v, 1) for k, v in run.wall.items() if k not in before}
        rows.append({"name": name, **evaluate(args, run, name, model), "wall_s": sum(stages.values()), "stages_s": stages, **extra})
        (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))
    md = table(rows)
    (args.out / "results.md").write_text(md)
    print(md)
    return {"rows": rows}


if __name__ == "__main__":
    main()
