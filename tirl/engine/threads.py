"""How many intra-op threads a decode step uses, chosen by measuring.

A decode step is a few hundred small operations (one query row per sequence). Each one split
over all cores must wait for its slowest thread, so when anything else runs on the machine —
the Python tool's sandbox workers, which tirl deliberately overlaps with decoding, or any other
job — one descheduled thread stalls every operation, and a busy machine decodes many times
faster with one thread, an idle one faster with all (docs/BENCHMARKS.md, "Rollout engine").
No fixed choice is right, so the batcher measures: every
``every`` steps it times ``trials`` steps with each candidate thread count (alternating, so
both see the same load) and decodes with the faster one until the next probe.

Thread counts change the order of floating-point reductions, so logits can differ in the last
bits between choices (as they do between batch sizes).
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator

import torch


class ThreadTuner:
    def __init__(self, candidates: list[int], every: int = 64, trials: int = 2):
        self.candidates = sorted(set(c for c in candidates if c >= 1)) or [1]
        self.every = every
        self.trials = trials
        self.best = self.candidates[-1]
        self._probe: list[int] = []  # thread counts still to time in this probe
        self._times: dict[int, list[float]] = {}
        self._since_probe = every  # probe at the first step
        self.probes = 0

    @classmethod
    def for_config(cls, decode_threads: int) -> ThreadTuner:
        """``decode_threads`` 0: choose between 1 and torch's thread count; n > 0: always n."""
        n = torch.get_num_threads()
        return cls([decode_threads] if decode_threads > 0 else [1, n])

    def next_threads(self) -> int:
        if len(self.candidates) == 1:
            return self.best
        if not self._probe and self._since_probe >= self.every:
            self._probe = [c for _ in range(self.trials) for c in self.candidates]
            self._times = {c: [] for c in self.candidates}
            self.probes += 1
        return self._probe[0] if self._probe else self.best

    def record(self, threads: int, seconds: float) -> None:
        if self._probe and self._probe[0] == threads:
            self._probe.pop(0)
            self._times[threads].append(seconds)
            if not self._probe:
                self.best = min(self.candidates, key=lambda c: statistics.median(self._times[c]))
                self._since_probe = 0
        else:
            self._since_probe += 1

    @contextlib.contextmanager
    def use(self, threads: int) -> Iterator[None]:
        before = torch.get_num_threads()
        if threads != before:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if threads != before:
                torch.set_num_threads(before)
