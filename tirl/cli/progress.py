"""Progress display shared by the commands: a rich bar on a terminal; plain lines every 10%
when the output goes to a file (rich does not redraw bars there)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

COLUMNS = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())


def make_progress(console: Console) -> Progress:
    return Progress(*COLUMNS, console=console)


class Counter:
    """Advance a bar by n; off a terminal, also print a line at each further 10% done."""

    def __init__(self, progress: Progress, description: str, total: int):
        self.progress, self.description, self.total = progress, description, total
        self.bar = progress.add_task(description, total=total)
        self.done, self.t0, self.next_pct = 0, time.perf_counter(), 10

    def __call__(self, n: int) -> None:
        self.done += n
        self.progress.advance(self.bar, n)
        if self.progress.console.is_terminal or self.total <= 0:
            return
        pct = 100 * self.done // self.total
        if pct >= self.next_pct:
            self.progress.console.print(f"{self.description}: {self.done}/{self.total} ({pct}%) after {time.perf_counter() - self.t0:.0f} s")
            self.next_pct = (pct // 10 + 1) * 10
