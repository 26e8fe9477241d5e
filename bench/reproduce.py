"""The reproduction table: every recipe from one start model at an equal rollout budget, over
several seeds, with the mean and 95% confidence interval of each metric, the recipe's own
mechanism measured, and a verdict on its paper's claim at this scale.

Every run starts from ``--model`` and trains ``--steps`` RL steps of ``--tasks-per-step`` tasks
x ``--budget`` trajectories per task (GRPO family and E3-TIR as ``rollout.group_size``, ARPO as
its budget M with N = M/2 started from the prompt, ELPO as N_total; ET-Agent's curriculum splits
the steps over its rounds and AutoTraj trains GRPO with its reward model after repair and SFT,
both as in bench/compare_calibration.py). Every final model, and the start model, is evaluated
on the same ``--eval-tasks`` held-out tasks twice with ``tirl eval``: greedy (one sample, T=0)
and sampled (``--eval-samples`` at T=1: accuracy, pass@k, maj@k, tool calls per trajectory,
response tokens). Per seed everything lands in ``OUT/seed<S>/<recipe>/``; a (recipe, seed)
whose ``result.json`` exists is read, not rerun, so an interrupted table continues where it
stopped when the same command is run again.

The table gives mean ± 95% half-width over seeds (Student's t, tirl.eval.intervals); the claims
table gives each paper's claim, the paired per-seed difference to GRPO with its interval, and
reproduced / not reproduced / inconclusive (docs/RESULTS.md, "Reproduction table").

    python bench/reproduce.py --quick     # tiny-random, 2 seeds, minutes: checks the pipeline
    python bench/reproduce.py --full      # the documented numbers: SmolLM2 after SFT, 3 seeds (many hours)

``--recipes`` picks a subset, ``--seeds`` the seeds, ``--set section.field=value`` overrides a
config field in every training run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

from tirl.eval.intervals import mean_ci, paired_ci, verdict

BENCH = Path(__file__).resolve().parent
RECIPES = ("grpo", "dapo", "dr_grpo", "gspo", "arpo", "elpo", "e3_tir", "et_agent", "autotraj")
FLAT = ("grpo", "dapo", "dr_grpo", "gspo", "e3_tir")
# (key in result.json, column title, format)
COLUMNS = (
    ("greedy", "greedy acc", "{:.3f}"),
    ("accuracy", "T=1 acc", "{:.3f}"),
    ("pass@1", "pass@1", "{:.3f}"),
    ("pass@4", "pass@4", "{:.3f}"),
    ("maj@4", "maj@4", "{:.3f}"),
    ("tool_calls", "calls/traj", "{:.2f}"),
    ("response_tokens", "tokens/traj", "{:.0f}"),
    ("train_trajectories", "trained trajs", "{:.0f}"),
    ("wall_s", "train s", "{:.0f}"),
)
# What each paper claims over GRPO, and the metric that carries the claim at this scale.
CLAIMS = {
    "dapo": ("DAPO (Yu et al. 2025): higher accuracy than GRPO (clip-higher, dynamic sampling, token-level loss)", "greedy", 1),
    "dr_grpo": ("Dr. GRPO (Liu et al. 2025): accuracy at least GRPO's with shorter responses", "response_tokens", -1),
    "gspo": ("GSPO (Zheng et al. 2025): higher accuracy than GRPO (sequence-level ratio)", "greedy", 1),
    "arpo": ("ARPO (Dong et al. 2025): accuracy at least GRPO's with about half the tool calls", "tool_calls", -1),
    "elpo": ("ELPO (2026): higher accuracy than GRPO (error-localised trees)", "greedy", 1),
    "e3_tir": ("E3-TIR (Guo et al. 2026): higher accuracy than GRPO from the same start (expert anchors)", "greedy", 1),
    "et_agent": ("ET-Agent (Chen et al. 2026): fewer tool calls at equal accuracy (behaviour calibration)", "tool_calls", -1),
    "autotraj": ("AutoTraj (Gong et al. 2026): higher accuracy than GRPO (repaired SFT data + trajectory RM)", "greedy", 1),
}


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


calib = _bench("compare_calibration")
# the same number of trajectories per task per step for every recipe
budget_overrides = _bench("compare_recipes").budget_overrides


def _metrics(run_dir: Path) -> list[dict]:
    f = run_dir / "metrics.jsonl"
    if not f.exists():
        return []
    return [json.loads(x) for x in f.read_text().splitlines() if x.strip()]


def _mean(steps: list[dict], key: str) -> float | None:
    xs = [s[key] for s in steps if isinstance(s.get(key), (int, float))]
    return sum(xs) / len(xs) if xs else None


def mechanism(recipe: str, steps: list[dict], extra: dict) -> dict:
    """The recipe's own mechanism, from its training metrics (means over steps)."""
    if recipe == "elpo":
        deep = [s["tree/depth_max"] > 1 for s in steps if "tree/depth_max" in s]
        return {
            "tree depth": _mean(steps, "tree/depth"),
            "critical step": _mean(steps, "tree/critical_step"),
            "steps with a tree deeper than 1": sum(deep) / len(deep) if deep else None,
        }
    if recipe == "arpo":
        return {"forks per task": _mean(steps, "tree/branches_per_task"), "calls per training traj": _mean(steps, "rollout/tool_calls")}
    if recipe == "e3_tir":
        return {"anchored continuations that succeed": _mean(steps, "e3/anchor_success"), "expert share": _mean(steps, "e3/share")}
    if recipe == "et_agent":
        return {
            "calls per training traj": _mean(steps, "rollout/tool_calls"),
            "flywheel trajectories": extra.get("flywheel_trajectories"),
            "RFT examples": extra.get("rft_examples"),
        }
    if recipe == "autotraj":
        rm = extra.get("rm") or {}
        return {"SFT examples": extra.get("sft_examples"), "pairs": extra.get("pairs"), "RM pairwise acc (held out)": rm.get("val_accuracy_after")}
    return {"calls per training traj": _mean(steps, "rollout/tool_calls")}


class Seed:
    """One seed's runs: settings shared by every stage, and the evaluations."""

    def __init__(self, args, seed: int):
        self.args, self.seed = args, seed
        self.out = args.out / f"seed{seed}"
        self.out.mkdir(parents=True, exist_ok=True)

    def stage_args(self, out: Path):
        """compare_calibration's settings for the pipelines it defines (et_agent, autotraj)."""
        a = self.args
        c = calib.parser().parse_args([])
        if a.quick:
            calib.quick(c)
        c.model, c.steps, c.tasks_per_step, c.group_size, c.lr = a.model, a.steps, a.tasks_per_step, a.budget, a.lr
        c.task, c.difficulty, c.eval_tasks, c.eval_samples, c.max_tokens = a.task, a.difficulty, a.eval_tasks, a.eval_samples, a.max_tokens
        c.seed, c.out, c.set, c.rounds = self.seed, out, [*c.set, *a.set], a.rounds
        return c

    def evaluate(self, run, name: str, model: str, out: Path) -> dict:
        a = self.args
        common = [f"train.seed={self.seed}", *([f"task.difficulty=[{a.difficulty}]"] if a.difficulty else [])]
        base = ["eval", "--model", model, "--task", a.task, "--n-tasks", str(a.eval_tasks), "--max-response-tokens", str(a.max_tokens), *common]
        run(f"eval_{name}_greedy", [*base, "--n", "1", "--temperature", "0", "--out", str(out / "eval_greedy")])
        run(f"eval_{name}_t1", [*base, "--n", str(a.eval_samples), "--temperature", "1", "--out", str(out / "eval_t1")])
        g = json.loads((out / "eval_greedy" / "eval.json").read_text())
        r = json.loads((out / "eval_t1" / "eval.json").read_text())
        return {
            "greedy": g["accuracy"],
            "accuracy": r["accuracy"],
            **{f"pass@{k}": v for k, v in r["pass_at_k"].items()},
            **{f"maj@{k}": v for k, v in r["maj_at_k"].items()},
            "tool_calls": r["tool_calls_per_task"],
            "response_tokens": r["mean_policy_tokens"],
        }

    def run(self, recipe: str) -> dict:
        """Train and evaluate one recipe (or the start model, ``recipe == "start"``)."""
        out = self.out / recipe
        done = out / "result.json"
        if done.exists():
            return json.loads(done.read_text())
        out.mkdir(parents=True, exist_ok=True)
        a = self.args
        run = calib.Runner(out)
        extra: dict = {}
        if recipe == "start":
            model, run_dir = a.model, None
        elif recipe in ("et_agent", "autotraj"):
            model, extra = getattr(calib, recipe)(self.stage_args(out), run)
            run_dir = out / recipe / f"round{a.rounds}" if recipe == "et_agent" else out / recipe
        else:
            c = self.stage_args(out)
            extra_recipe = [f"strategy.e3.expert={a.expert}"] if recipe == "e3_tir" else []
            run(
                "train",
                [
                    "train",
                    recipe,
                    "--no-eval",
                    *calib.rl(c, a.model, a.steps),
                    f"run.name={recipe}",
                    "train.sft_first=false",
                    *budget_overrides(recipe, a.budget),
                    *extra_recipe,
                    *calib.common(c),
                ],
            )
            model, run_dir = str(out / recipe / "final_model"), out / recipe
        train_wall = sum(run.wall.values())
        row = self.evaluate(run, recipe, model, out)
        if run_dir is not None:
            steps = [s for d in ([run_dir] if recipe != "et_agent" else sorted((out / "et_agent").glob("round*"))) for s in _metrics(d)]
            row |= {
                "train_trajectories": sum(s.get("rollout/n", 0) for s in steps),
                "wall_s": train_wall,
                "budget": a.steps * a.tasks_per_step * a.budget,
                "mechanism": mechanism(recipe, steps, extra),
                "logp_gap_max": max((s["policy/logp_gap_engine"] for s in steps if "policy/logp_gap_engine" in s), default=None),
            }
        row = {"recipe": recipe, "seed": self.seed, **row}
        done.write_text(json.dumps(row, indent=2))
        return row


def _cell(ci, fmt: str) -> str:
    if ci.n == 0:
        return "-"
    return fmt.format(ci.mean) + ("" if math.isnan(ci.half) else " ± " + fmt.format(ci.half))


def table(results: dict[str, list[dict]]) -> str:
    head = "| recipe | seeds | " + " | ".join(c[1] for c in COLUMNS) + " | max logp gap |\n|---|---:|" + "---:|" * (len(COLUMNS) + 1) + "\n"
    lines = []
    for recipe, rows in results.items():
        cells = [_cell(mean_ci([r.get(k) for r in rows if r.get(k) is not None]), f) for k, _, f in COLUMNS]
        gaps = [r["logp_gap_max"] for r in rows if r.get("logp_gap_max") is not None]
        lines.append(
            f"| {recipe} | {len(rows)} | " + " | ".join(cells) + f" | {max(gaps):.4f} |"
            if gaps
            else f"| {recipe} | {len(rows)} | " + " | ".join(cells) + " | - |"
        )
    return head + "\n".join(lines) + "\n"


def claims(results: dict[str, list[dict]]) -> str:
    if "grpo" not in results:
        return ""
    base = {r["seed"]: r for r in results["grpo"]}
    out = ["| recipe | claim | metric | recipe − GRPO (paired, 95%) | verdict |", "|---|---|---|---:|---|"]
    for recipe, rows in results.items():
        if recipe not in CLAIMS:
            continue
        text, key, sign = CLAIMS[recipe]
        pairs = [(r[key], base[r["seed"]][key]) for r in rows if r["seed"] in base and r.get(key) is not None]
        d = paired_ci([sign * x for x, _ in pairs], [sign * y for _, y in pairs])
        shown = paired_ci([x for x, _ in pairs], [y for _, y in pairs])
        out.append(f"| {recipe} | {text} | {key}{' (lower is the claim)' if sign < 0 else ''} | {shown} | {verdict(d)} |")
    return "\n".join(out) + "\n"


def mechanisms(results: dict[str, list[dict]]) -> str:
    out = ["| recipe | mechanism (mean over seeds) |", "|---|---|"]
    for recipe, rows in results.items():
        keys = rows[0].get("mechanism", {}).keys() if rows else []
        parts = []
        for k in keys:
            ci = mean_ci([r["mechanism"].get(k) for r in rows if r.get("mechanism", {}).get(k) is not None])
            parts.append(f"{k}: {ci}")
        if parts:
            out.append(f"| {recipe} | {'; '.join(parts)} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument(
        "--quick",
        action="store_true",
        help="tiny-random, 2 seeds, 2 steps, every recipe but AutoTraj (a random model "
        "never writes a correct repair): checks the pipeline and the equal budgets",
    )
    size.add_argument("--full", action="store_true", help="the documented settings (SmolLM2-135M after SFT, 3 seeds)")
    p.add_argument("--model", default=None, help="start model of every run (default: --quick tiny-random, --full runs/sft128)")
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--seeds", default=None, help="comma-separated (default: --quick 0,1, --full 0,1,2)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--tasks-per-step", type=int, default=4)
    p.add_argument("--budget", type=int, default=8, help="trajectories per task per step")
    p.add_argument("--rounds", type=int, default=2, help="ET-Agent curriculum rounds (the steps are split over them)")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--task", default="arith")
    p.add_argument("--difficulty", default="1,2")
    p.add_argument("--expert", default="arith-reference", help="E3-TIR's expert source")
    p.add_argument("--eval-tasks", type=int, default=128)
    p.add_argument("--eval-samples", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    a = p.parse_args(argv)
    if a.quick:
        a.model = a.model or "tiny-random"
        a.seeds, a.steps = a.seeds or "0,1", a.steps or 2
        a.tasks_per_step, a.budget, a.eval_tasks, a.eval_samples, a.max_tokens = 1, 2, 2, 2, 32
        if a.recipes == ",".join(RECIPES):
            a.recipes = ",".join(r for r in RECIPES if r != "autotraj")
    else:
        a.model = a.model or "runs/sft128"
        a.seeds, a.steps = a.seeds or "0,1,2", a.steps or 40
    recipes = [r.strip() for r in a.recipes.split(",") if r.strip()]
    if unknown := [r for r in recipes if r not in RECIPES]:
        p.error(f"unknown recipe(s) {unknown}; choose from {', '.join(RECIPES)}")
    if "et_agent" in recipes and a.steps % a.rounds:
        p.error(f"--steps ({a.steps}) must be a multiple of --rounds ({a.rounds}) so ET-Agent trains as many steps as the others")
    seeds = [int(s) for s in a.seeds.split(",")]
    a.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    for seed in seeds:
        s = Seed(a, seed)
        for recipe in ["start", *recipes]:
            print(f"== seed {seed}: {recipe}", flush=True)
            results.setdefault(recipe, []).append(s.run(recipe))
    md = (
        f"Start model {a.model}; {a.task} {a.difficulty}; {a.steps} steps x {a.tasks_per_step} tasks x {a.budget} trajectories; "
        f"lr {a.lr:g}; eval {a.eval_tasks} held-out tasks (greedy, and {a.eval_samples} samples at T=1); seeds {a.seeds}. "
        "Cells: mean ± 95% half-width over seeds.\n\n" + table(results) + "\n" + claims(results) + "\n" + mechanisms(results)
    )
    (a.out / "results.md").write_text(md)
    (a.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "results": results}, indent=2))
    print(md)
    return {"results": results}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
