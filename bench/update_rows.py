"""The update benchmarks' batch: ``tasks`` arith prompts rendered by TagProtocol (no tools), each
with ``group`` rows of ``response`` random response tokens that carry the loss, advantages
alternating -1 / +1 — the vs-TRL batch shape without sampling anything."""

from __future__ import annotations

import random


def update_rows(tokenizer, tasks: int, group: int, response: int, seed: int = 0) -> list:
    from tirl.protocol import TagProtocol
    from tirl.tasks import load_tasks
    from tirl.types import TrainRow

    rng = random.Random(seed)
    rows = []
    for task in load_tasks("arith", n=tasks, seed=seed, split="train", difficulty=1):
        prompt = TagProtocol([]).prompt_ids(tokenizer, task)
        for g in range(group):
            resp = [rng.randrange(len(tokenizer)) for _ in range(response)]
            n = len(prompt) + len(resp)
            mask = [0.0] * len(prompt) + [1.0] * len(resp)
            adv = 1.0 if g % 2 else -1.0
            rows.append(TrainRow(prompt + resp, mask, [adv * m for m in mask], [0.0] * n, [0.2] * n, [0.2] * n, [0.0] * n, [0.0] * n, task.id, g))
    return rows
