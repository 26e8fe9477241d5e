"""Shared pieces of the scale-out tests: a small tiny-random run whose reward varies between
samples (so every step really moves the weights) and ways to compare two runs exactly."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tirl.rewards.base import RewardSpec

SMALL = [
    "model.name=tiny-random",
    "train.steps=2",
    "train.tasks_per_step=3",
    "train.checkpoint_every=0",
    "train.save_trajectories=true",
    "rollout.group_size=3",
    "rollout.max_response_tokens=16",
    "rollout.max_turn_tokens=16",
    "optim.lr=1e-3",
    "optim.micro_batch_size=4",
    "tools.sandbox.workers=1",
    "task.n_train=12",
    "task.n_eval=2",
]
IGNORED = ("time/", "rollout/tokens_per_s", "total/wall_s", "cluster/", "staleness/", "engine/", "mem/")


def even_token_share(group, task):
    """A deterministic reward with variance: the share of even token ids a sample produced."""
    return [sum(1 for t in tr.completion_ids if t % 2 == 0) / max(len(tr.completion_ids), 1) for tr in group]


EVEN = [RewardSpec("even", even_token_share, 1.0)]


def metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if not k.startswith(IGNORED)} for r in rows]


def trajectories(run_dir: Path, step: int, logprobs: bool = True) -> list[dict]:
    """A step's saved trajectories, in task/sample order, without the wall-clock fields (and
    without the engine's per-token log-probs and entropies unless ``logprobs``)."""
    rows = [json.loads(line) for line in (run_dir / "trajectories" / f"step_{step:04d}.jsonl").read_text().splitlines()]
    for r in rows:
        for c in r.get("tool_calls", []):
            c.pop("latency_ms", None)
        if not logprobs:
            for seg in r["segments"]:
                seg.pop("logprobs", None)
                seg.pop("entropy", None)
    return sorted(rows, key=lambda r: (r["task_id"], r["sample"]))


def logprob_gap(a: Path, b: Path, step: int) -> float:
    """Largest difference between two runs' behaviour log-probs of the same tokens at a step."""
    gap = 0.0
    for x, y in zip(trajectories(a, step), trajectories(b, step), strict=True):
        for s, t in zip(x["segments"], y["segments"], strict=True):
            gap = max([gap] + [abs(p - q) for p, q in zip(s.get("logprobs") or [], t.get("logprobs") or [], strict=True)])
    return gap


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class MarkThenSleep:
    """``even_token_share`` that first leaves a file named after its process in ``folder`` and
    sleeps, so a test can find a rollout worker in the middle of its rewards and kill it."""

    def __init__(self, folder: str, seconds: float = 0.5):
        self.folder, self.seconds = folder, seconds

    def __call__(self, group, task):
        import os
        import time

        Path(self.folder, str(os.getpid())).touch()
        time.sleep(self.seconds)
        return even_token_share(group, task)
