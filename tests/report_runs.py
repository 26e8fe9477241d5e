"""Real run directories for the report and tracking tests, written by the real trainer in seconds:
tiny-random with a scripted engine whose samples differ (a tool call that raises, a truncated
turn, right and wrong answers), so an ELPO run has successes, failures, searches, forks, critical
steps and error-localised clipping, and evaluations before and after."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from fake_engine import ScriptedEngine

from tirl.config import load_config
from tirl.engine.base import Completion, FinishReason
from tirl.train.rl_trainer import RLTrainer

# every task's answer is 42; turn k of a trajectory is one of TURNS[k], chosen round-robin
TURNS = [
    ["<python>x = 6 * 7\nprint(x)</python>"],
    ["<python>print(x / 0)</python>", "<python>print(x)</python>", "<python>print(x + 1)</python>"],
    ["<answer>\\boxed{42}</answer>", "<answer>\\boxed{41}</answer>", "I keep thinking " + "and thinking " * 80],
]


class VariedEngine(ScriptedEngine):
    """ScriptedEngine whose k-th turn cycles through the variants of TURNS[k]; it has a generator
    (the trainer reseeds it for evaluation) and counts the tokens it generated."""

    def __init__(self, tokenizer):
        super().__init__(tokenizer, [v[0] for v in TURNS])
        self.generator = torch.Generator().manual_seed(0)
        self.calls = [0] * len(TURNS)

    def generate(self, requests):
        out = []
        for r in requests:
            k = min(self._turn(r.prefix_ids), len(TURNS) - 1)
            text = TURNS[k][self.calls[k] % len(TURNS[k])]
            self.calls[k] += 1
            ids = self._ids(text)
            finish, stop = FinishReason.LENGTH, None
            for s in r.sampling.stop_strings:
                if text.rstrip().endswith(s):
                    finish, stop = FinishReason.STOP_STRING, s
            if len(ids) > r.sampling.max_new_tokens:
                ids, finish, stop = ids[: r.sampling.max_new_tokens], FinishReason.LENGTH, None
            n = len(ids)
            out.append(Completion(ids, [-0.05 * (i % 7) for i in range(n)], [0.3 * (i % 5) for i in range(n)], finish, stop))
            self.tokens_generated += n
        return out


def write_tasks(path: Path, n: int = 6) -> Path:
    rows = [{"id": f"q{i}", "prompt": f"What is 6 times 7? (question {i})", "answer": "42"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def scripted_run(root: Path, name: str = "elpo", recipe: str = "elpo", steps: int = 2, extra: list[str] | None = None) -> Path:
    """Train ``steps`` steps of ``recipe`` with the VariedEngine (evaluations before and after
    included) and return the run directory."""
    tasks = write_tasks(root / f"{name}_tasks.jsonl")
    overrides = [
        "model.name=tiny-random",
        f"task.name={tasks}",
        "task.n_train=6",
        "task.n_eval=3",
        f"train.steps={steps}",
        "train.tasks_per_step=2",
        "train.checkpoint_every=1",
        "train.eval_samples=2",
        "rollout.max_response_tokens=160",
        "rollout.max_turn_tokens=48",
        "optim.micro_batch_size=4",
        "tools.sandbox_workers=1",
        "strategy.elpo.budget=6",
        "strategy.elpo.buffer=2",
        f"run.out_dir={root}",
        f"run.name={name}",
        f"run.recipe={recipe}",
    ] + list(extra or [])
    tr = RLTrainer(load_config(recipe, overrides))
    tr.rt.engine = VariedEngine(tr.tokenizer)
    tr.train()
    return root / name
