"""Deterministic train/val/test assignment by a content hash.

A task's split is a function of a stable key (a problem's canonical content, or a dataset
identifier), never of a random state or of the order tasks were loaded in, so the splits are
disjoint by construction and identical on every machine and Python version (SHA-256, not
``hash()``, which is salted per process).
"""

from __future__ import annotations

import hashlib

SPLITS: tuple[str, ...] = ("train", "val", "test")


def split_of(key: str, fractions: dict[str, float]) -> str:
    """The split a key falls into, given the fraction of the hash space each split owns."""
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-9 or any(f < 0 for f in fractions.values()):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    edge = 0.0
    for name, frac in fractions.items():
        edge += frac
        if u < edge:
            return name
    return list(fractions)[-1]  # u within float rounding of 1.0


def check_split(split: str, allowed: tuple[str, ...] = SPLITS) -> str:
    if split not in allowed:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(allowed)}")
    return split
