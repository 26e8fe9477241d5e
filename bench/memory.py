"""Where a training run's memory goes: peak resident memory by phase and by part.

Runs ``tirl train RECIPE`` (default: the ``make demo`` run) in a child process, samples the
resident memory of the trainer and of its whole process tree (sandbox workers included) every
0.2 s, then reads the run's own per-phase peaks from ``metrics.jsonl`` (``mem/*``: the rollout
and the update of each step, each evaluation, SFT; see tirl.train.memory.PhasePeak) and what
the engine holds beside the model (its weight copy, KV cache, prefix store). The model's own
parts follow from its parameter count: fp32 weights 4 bytes per parameter, gradients 4,
AdamW's two moments 8.

    python bench/memory.py                      # the make demo run
    python bench/memory.py --recipe grpo_arith --set train.steps=4 --set train.sft_first=false
    python bench/memory.py --set engine.prefix_cache_gb=0.25 --set engine.max_batch=32
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GiB = 2**30


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


class Sampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_main = self.peak_tree = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak_main = max(self.peak_main, _rss(self.pid))
            self.peak_tree = max(self.peak_tree, sum(_rss(p) for p in _tree(self.pid)))
            time.sleep(self.every)


def measure(recipe: str, overrides: list[str], out: Path) -> dict:
    cmd = [sys.executable, "-m", "tirl", "train", recipe, f"run.out_dir={out}", f"run.name={recipe}", "--overwrite", *overrides]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(proc.pid)
    sampler.start()
    tail = []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
    proc.wait()
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"training failed ({proc.returncode}):\n" + "\n".join(tail))
    run = out / recipe
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    phases: dict[str, float] = {}
    for m in steps:
        for k, v in m.items():
            if k.startswith("mem/") and isinstance(v, int | float):
                phases[k[4:]] = max(phases.get(k[4:], 0.0), float(v))
    weights = sum(p.stat().st_size for p in (run / "final_model").glob("*.safetensors")) if (run / "final_model").exists() else 0
    return {
        "command": " ".join(["tirl train", recipe, *overrides]),
        "wall_s": time.perf_counter() - t0,
        "peak_trainer_gb": sampler.peak_main / GiB,
        "peak_tree_gb": sampler.peak_tree / GiB,
        "phases_gb": phases,
        "model_fp32_weights_gb": weights / GiB,
        "model_grads_gb": weights / GiB,
        "model_adamw_gb": 2 * weights / GiB,
    }


def table(r: dict) -> str:
    rows = [
        ("peak, trainer process (sampled)", r["peak_trainer_gb"]),
        ("peak, with sandbox workers (sampled)", r["peak_tree_gb"]),
        *(
            (f"phase peak: {k.removesuffix('_peak_gb')}", v)
            for k, v in sorted(r["phases_gb"].items())
            if k.endswith("_peak_gb") and not k.startswith("engine")
        ),
        *(
            (f"engine: {k.removeprefix('engine_').removesuffix('_gb')} (max over steps)", v)
            for k, v in sorted(r["phases_gb"].items())
            if k.startswith("engine")
        ),
        ("model: fp32 weights", r["model_fp32_weights_gb"]),
        ("model: gradients", r["model_grads_gb"]),
        ("model: AdamW moments", r["model_adamw_gb"]),
    ]
    lines = ["| part | GiB |", "|---|---:|"] + [f"| {name} | {v:.2f} |" for name, v in rows]
    return "\n".join(lines) + f"\n\n`{r['command']}` ({r['wall_s'] / 60:.1f} min)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="demo")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="a config override (repeatable)")
    ap.add_argument("--out", type=Path, default=None, help="where the run goes (default: a temporary directory)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args.recipe, args.overrides, args.out or Path(tmp))
    print(table(r))
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
