"""A resumable stream of training tasks: seeded shuffle per epoch, a position that a
checkpoint saves, so a resumed run draws exactly the tasks the uninterrupted one would."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tirl.types import Task


@dataclass
class StreamState:
    epoch: int = 0
    index: int = 0


class TaskStream:
    def __init__(self, tasks: list[Task], seed: int):
        if not tasks:
            raise ValueError("the training task list is empty")
        self.tasks = tasks
        self.seed = seed
        self.state = StreamState()
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[int]:
        order = list(range(len(self.tasks)))
        random.Random(f"{self.seed}/{epoch}").shuffle(order)
        return order

    def take(self, n: int) -> list[Task]:
        out = []
        while len(out) < n:
            if self.state.index >= len(self._order):
                self.state = StreamState(self.state.epoch + 1, 0)
                self._order = self._shuffled(self.state.epoch)
            out.append(self.tasks[self._order[self.state.index]])
            self.state.index += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.state.epoch, "index": self.state.index}

    def load_state_dict(self, d: dict) -> None:
        self.state = StreamState(int(d["epoch"]), int(d["index"]))
        self._order = self._shuffled(self.state.epoch)
