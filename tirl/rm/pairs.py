"""Preference pairs on disk: one JSON object per line with ``prompt`` (the question), ``chosen``
and ``rejected`` (trajectory texts, chosen ≻ rejected) and optionally ``task_id`` (AutoTraj's
RM dataset columns: prompt/query, chosen, rejected). ``tirl repair`` writes them."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    task_id: str = ""


def write_pairs(path: str | Path, pairs: Iterable[PreferencePair]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w") as f:
        for p in pairs:
            f.write(json.dumps(asdict(p)) + "\n")
            n += 1
    return n


def read_pairs(path: str | Path) -> list[PreferencePair]:
    """All pairs of a file; a malformed line is an error naming the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no preference-pairs file at {path}")
    out = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: invalid JSON ({e.msg})") from None
            if not isinstance(d, dict):
                raise ValueError(f"{path}:{i}: expected an object with prompt, chosen, rejected")
            for k in ("prompt", "chosen", "rejected"):
                if not isinstance(d.get(k), str) or not d[k].strip():
                    raise ValueError(f"{path}:{i}: field {k!r} must be a non-empty string")
            out.append(PreferencePair(d["prompt"], d["chosen"], d["rejected"], str(d.get("task_id", ""))))
    if not out:
        raise ValueError(f"{path}: no preference pairs")
    return out


def split_pairs(pairs: list[PreferencePair], val_fraction: float, seed: int = 0) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, held-out): a seeded shuffle; pairs of one task stay on one side, so held-out
    accuracy is measured on questions the model was not trained on. At least one pair is held
    out when val_fraction > 0 and there are two or more tasks."""
    tasks = sorted({p.task_id or f"#{i}" for i, p in enumerate(pairs)})
    key = [p.task_id or f"#{i}" for i, p in enumerate(pairs)]
    random.Random(seed).shuffle(tasks)
    n_val = round(val_fraction * len(tasks))
    if val_fraction > 0 and len(tasks) >= 2:
        n_val = min(max(n_val, 1), len(tasks) - 1)
    held = set(tasks[:n_val])
    return [p for p, k in zip(pairs, key) if k not in held], [p for p, k in zip(pairs, key) if k in held]
