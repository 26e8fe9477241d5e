"""What it takes for GRPO to learn: a grid of runs from one start model, resumable, with a table
and learning curves.

Every run is ``tirl train RECIPE`` with the same start model, task stream and evaluation, and one
point of the grid (``--grid name=v1,v2`` over any config field; several ``--grid`` make a
product) times ``--seeds``. A run whose directory holds checkpoints but no ``eval.json`` is
resumed; a finished run is read, not rerun, so an interrupted sweep continues where it stopped.
Results: ``OUT/sweep.md`` (one row per run: held-out greedy and sampled accuracy before and
after, the training reward of the first and last steps, wall time, the engine/trainer log-prob
gap) and ``OUT/sweep.png`` (training accuracy, smoothed, and held-out greedy accuracy per step).

    python bench/grpo_sweep.py --start runs/sft128 --grid optim.lr=5e-6,1e-5,2e-5 --out runs/sweep_lr
    python bench/grpo_sweep.py --start runs/sft128 --grid optim.lr=1e-5 --seeds 0,1,2 --out runs/seeds
    python bench/grpo_sweep.py --quick      # tiny-random, two steps per run: checks the pipeline

``--set section.field=value`` (repeatable) overrides a field in every run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
import time
from pathlib import Path


def _grid(specs: list[str]) -> list[dict[str, str]]:
    axes = []
    for spec in specs:
        if "=" not in spec:
            sys.exit(f"--grid {spec!r}: expected field=v1,v2,...")
        key, vals = spec.split("=", 1)
        axes.append([(key, v) for v in vals.split(",") if v])
    return [dict(p) for p in itertools.product(*axes)] if axes else [{}]


def _name(point: dict[str, str], seed: int) -> str:
    parts = [f"{k.split('.')[-1]}{v}" for k, v in point.items()]
    return "_".join(parts + [f"s{seed}"])


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a torn last line of a killed run
    return out


def run_one(args, point: dict[str, str], seed: int) -> Path:
    name = _name(point, seed)
    run_dir = Path(args.out) / name
    if (run_dir / "eval.json").exists():
        print(f"[{name}] finished, reading it")
        return run_dir
    if (run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").iterdir()):
        # The run directory holds its own config; resume takes nothing else.
        cmd = [sys.executable, "-m", "tirl", "train", "--resume", str(run_dir)]
        print(f"[{name}] resuming")
    else:
        cmd = [sys.executable, "-m", "tirl", "train", args.recipe]
        cmd += [f"run.out_dir={args.out}", f"run.name={name}", f"train.seed={seed}"]
        if args.start:
            cmd += [f"model.name={args.start}", "train.sft_first=false"]
        cmd += [f"{k}={v}" for k, v in point.items()] + list(args.set)
    print(f"[{name}] " + " ".join(cmd[3:]), flush=True)
    t0 = time.time()
    log = open(Path(args.out) / f"{name}.log", "a")
    rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    if rc != 0:
        print(f"[{name}] exited with {rc}; see {Path(args.out) / (name + '.log')}")
    else:
        print(f"[{name}] done in {time.time() - t0:.0f} s")
    return run_dir


def summarize(run_dir: Path) -> dict:
    m = _read_jsonl(run_dir / "metrics.jsonl")
    ev = json.loads((run_dir / "eval.json").read_text()) if (run_dir / "eval.json").exists() else {}
    steps = [x for x in m if "reward/accuracy" in x]

    def first_last(key: str, k: int = 5) -> tuple[float, float]:
        vals = [x[key] for x in steps if key in x]
        if not vals:
            return math.nan, math.nan
        return sum(vals[:k]) / len(vals[:k]), sum(vals[-k:]) / len(vals[-k:])

    # the start's evaluation; metrics.jsonl's step 0 for runs resumed before eval.json kept it
    step0 = next((x for x in m if x.get("step") == 0 and "eval/accuracy" in x), {})
    start = ev.get("after_sft", ev.get("before", {"accuracy": step0.get("eval_sft/accuracy", step0.get("eval/accuracy", math.nan))}))
    start_t1 = ev.get("after_sft_t1", ev.get("before_t1", {"accuracy": step0.get("eval_sft_t1/accuracy", step0.get("eval_t1/accuracy", math.nan))}))
    gaps = [x["policy/logp_gap_engine"] for x in steps if "policy/logp_gap_engine" in x]
    return {
        "run": run_dir.name,
        "steps": len(steps),
        "greedy_before": start.get("accuracy", math.nan),
        "greedy_after": ev.get("after", {}).get("accuracy", math.nan),
        "t1_before": start_t1.get("accuracy", math.nan),
        "t1_after": ev.get("after_t1", {}).get("accuracy", math.nan),
        "train_acc_first5": first_last("reward/accuracy")[0],
        "train_acc_last5": first_last("reward/accuracy")[1],
        "entropy_first5": first_last("policy/entropy")[0],
        "entropy_last5": first_last("policy/entropy")[1],
        "logp_gap_max": max(gaps) if gaps else math.nan,
        "rl_wall_min": sum(x.get("time/step_s", 0.0) for x in steps) / 60,
        "curve": [(x["step"], x["reward/accuracy"]) for x in steps if "step" in x],
        "eval_curve": [(x["step"], x["eval/accuracy"]) for x in m if "eval/accuracy" in x and "step" in x],
    }


def write_table(rows: list[dict], out: Path) -> str:
    head = (
        "| run | steps | greedy before | greedy after | Δ | T=1 before | T=1 after | Δ | train acc first 5 → last 5 "
        "| entropy first 5 → last 5 | max logp gap | RL min |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        d1 = r["greedy_after"] - r["greedy_before"]
        d2 = r["t1_after"] - r["t1_before"]
        lines.append(
            f"| {r['run']} | {r['steps']} | {r['greedy_before']:.3f} | {r['greedy_after']:.3f} | {d1:+.3f} | {r['t1_before']:.3f} "
            f"| {r['t1_after']:.3f} | {d2:+.3f} | {r['train_acc_first5']:.3f} → {r['train_acc_last5']:.3f} "
            f"| {r['entropy_first5']:.3f} → {r['entropy_last5']:.3f} | {r['logp_gap_max']:.4f} | {r['rl_wall_min']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "sweep.md").write_text(text)
    return text


def plot(rows: list[dict], out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in rows:
        if r["curve"]:
            xs, ys = zip(*r["curve"])
            w = 5
            smooth = [sum(ys[max(0, i - w + 1) : i + 1]) / len(ys[max(0, i - w + 1) : i + 1]) for i in range(len(ys))]
            a.plot(xs, smooth, label=r["run"])
        if r["eval_curve"]:
            xs, ys = zip(*r["eval_curve"])
            b.plot(xs, ys, marker="o", label=r["run"])
    a.set(title="training accuracy (T=1, 5-step moving mean)", xlabel="RL step", ylabel="accuracy")
    b.set(title="held-out greedy accuracy", xlabel="RL step", ylabel="accuracy")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "sweep.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="grpo_arith", help="recipe every run starts from (default grpo_arith)")
    p.add_argument("--start", default=None, help="start model (a directory, alias or finished run); skips the recipe's SFT stage")
    p.add_argument("--grid", action="append", default=[], help="field=v1,v2,... (repeatable: a product)")
    p.add_argument("--seeds", default="0", help="comma-separated train.seed values")
    p.add_argument("--set", action="append", default=[], help="section.field=value for every run")
    p.add_argument("--out", default="runs/sweep")
    p.add_argument("--quick", action="store_true", help="tiny-random, 2 steps, 8 eval tasks: checks the pipeline")
    args = p.parse_args(argv)
    if args.quick:
        args.start = args.start or "tiny-random"
        args.grid = args.grid or ["optim.lr=1e-5,2e-5"]
        args.set = [
            "train.steps=2",
            "train.tasks_per_step=2",
            "rollout.group_size=2",
            "task.n_eval=4",
            "train.eval_every=1",
            "train.eval_sampled=2",
            "rollout.max_response_tokens=48",
            "rollout.max_turn_tokens=48",
            "train.checkpoint_every=1",
        ] + args.set
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    rows = []
    for point in _grid(args.grid):
        for seed in seeds:
            rows.append(summarize(run_one(args, point, seed)))
            write_table(rows, out)  # the table grows as runs finish
    print(write_table(rows, out))
    png = plot(rows, out)
    if png:
        print(f"curves: {png}")
    (out / "sweep.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
