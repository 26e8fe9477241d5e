"""Scale-out on one machine: the same GRPO run inline and with its rollouts on Ray workers.

The workload is bench/vs_trl.py's (SmolLM2-135M-Instruct, 4 arith tasks x 4 samples per step,
<= 128 new tokens, lr 1e-6, no tools, no KL; docs/BENCHMARKS.md, "tirl vs TRL"). Each setting
is one run of ``--warmup`` + ``--steps`` RL steps; the timed steps' medians are reported:

- ``inline``: one process (the default, ``cluster.scheduler=inline``);
- ``ray-1``, ``ray-2``: rollouts on 1 or 2 Ray rollout workers, weights through the object store;
- ``ray-1-disk``: as ``ray-1``, weights through a safetensors file;
- ``ray-1-stale1``: as ``ray-1`` with ``max_staleness=1`` (step t+1 is generated while step t trains).

Columns: seconds per step (``time/step_s``), of which the driver waited for rollouts
(``time/rollout_s``) and updated (``time/update_s``); sampled tokens per second of step time;
and the weight sync per step: for ``inline`` the engine's own copy of the weights into its fast
path (``inproc``, timed here by calling ``sync_weights`` after each step), for Ray the driver's
publish, the slowest worker's load and (synchronous runs) the wall time from publish until every
worker holds the weights (``cluster/weight_*``).

One Ray cluster (``--ray-cpus`` logical CPUs, ``--object-store-mb`` MB) serves every Ray setting.

    python bench/scaling.py                       # SmolLM2-135M, 1 warm-up + 3 timed steps per setting
    python bench/scaling.py --quick               # tiny-random, 1 timed step (checks that it runs)
    python bench/scaling.py --settings inline ray-1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

SETTINGS: dict[str, list[str]] = {
    "inline": [],
    "ray-1": ["cluster.scheduler=ray", "cluster.rollout_workers=1"],
    "ray-2": ["cluster.scheduler=ray", "cluster.rollout_workers=2"],
    "ray-1-disk": ["cluster.scheduler=ray", "cluster.rollout_workers=1", "cluster.weight_sync=disk"],
    "ray-1-stale1": ["cluster.scheduler=ray", "cluster.rollout_workers=1", "cluster.max_staleness=1"],
}


def overrides(args, out_dir: Path, name: str) -> list[str]:
    n_steps = args.warmup + args.steps
    return [
        f"model.name={args.model}",
        "tools.python=false",
        "task.name=arith",
        "task.difficulty=1",
        f"task.n_train={args.tasks * n_steps}",
        f"train.steps={n_steps}",
        f"train.tasks_per_step={args.tasks}",
        "train.checkpoint_every=0",
        "train.save_trajectories=false",
        f"rollout.group_size={args.group}",
        f"rollout.max_response_tokens={args.max_tokens}",
        f"rollout.max_turn_tokens={args.max_tokens}",
        f"optim.lr={args.lr}",
        "algo.kl_coef=0",
        f"run.out_dir={out_dir}",
        f"run.name={name}",
        *SETTINGS[name],
    ]


def run_setting(args, name: str, out_dir: Path) -> dict:
    from tirl.cluster import make_trainer
    from tirl.config import load_config

    tr = make_trainer(load_config("grpo", overrides(args, out_dir, name)))
    rows = []
    try:
        for i in range(args.warmup + args.steps):
            m = tr.train_step()
            if name == "inline":  # inproc: the engine copies the new weights into its fast path
                t0 = time.perf_counter()
                tr.rt.engine.sync_weights()
                m["cluster/weight_inproc_s"] = time.perf_counter() - t0
            if i >= args.warmup:
                rows.append(m)
            print(f"  {name} step {i + 1}: {m['time/step_s']:.2f} s", file=sys.stderr, flush=True)
    finally:
        tr.close()

    def med(key: str) -> float:
        values = [r[key] for r in rows if key in r]
        return statistics.median(values) if values else float("nan")

    tokens = [r["rollout/policy_tokens"] * r["rollout/n"] for r in rows]
    return {
        "setting": name,
        "step_s": med("time/step_s"),
        "rollout_s": med("time/rollout_s"),
        "update_s": med("time/update_s"),
        "tokens_per_s": statistics.median(t / r["time/step_s"] for t, r in zip(tokens, rows)),
        "sync_inproc_s": med("cluster/weight_inproc_s"),
        "sync_publish_s": med("cluster/weight_publish_s"),
        "sync_load_s": med("cluster/weight_load_s"),
        "sync_wall_s": med("cluster/weight_wall_s"),
        "sync_mb": med("cluster/weight_bytes") / 2**20,
        "lag_max": max((r.get("staleness/lag_max", 0.0) for r in rows), default=0.0),
    }


def table(results: list[dict]) -> str:
    def f(x: float, fmt: str = "{:.2f}") -> str:
        return "-" if x != x else fmt.format(x)  # NaN: not measured for this setting

    lines = [
        "| setting | s/step | rollout wait s | update s | sampled tokens/s | weight sync s (inproc / publish / load / wall) | MB | max lag |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        sync = " / ".join(f(r[k], "{:.3f}") for k in ("sync_inproc_s", "sync_publish_s", "sync_load_s", "sync_wall_s"))
        lines.append(
            f"| {r['setting']} | {f(r['step_s'])} | {f(r['rollout_s'])} | {f(r['update_s'])} | {f(r['tokens_per_s'], '{:.0f}')} "
            f"| {sync} | {f(r['sync_mb'], '{:.0f}')} | {r['lag_max']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--ray-cpus", type=int, default=4, help="logical CPUs of the local Ray cluster (its actors reserve 1 each)")
    ap.add_argument("--object-store-mb", type=int, default=1200, help="room for one fp32 copy of the weights (SmolLM2-135M: 515 MB)")
    ap.add_argument("--quick", action="store_true", help="tiny-random, 16 new tokens, no warm-up, 1 timed step")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.model, args.max_tokens, args.warmup, args.steps = "tiny-random", 16, 0, 1
    if any(s != "inline" for s in args.settings):
        import ray

        ray.init(num_cpus=args.ray_cpus, object_store_memory=args.object_store_mb * 2**20, include_dashboard=False)
    results = []
    with tempfile.TemporaryDirectory() as d:
        for name in args.settings:
            results.append(run_setting(args, name, Path(d)))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
