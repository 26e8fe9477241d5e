"""Size and generation time of ``tirl report`` on existing runs (docs/BENCHMARKS.md, "The HTML
report"): for each run, the report with the default sample (log.report) and, with ``--all``, with
every step and task embedded, for comparison.

    python bench/report.py runs/demo runs/grpo40 [--repeats 3] [--all] [--browser]

Each repeat writes the report into a temporary directory (the runs are only read). Prints one
line per run and setting: steps and trajectories in the run, trajectories embedded, MB, and the
median wall time of a ``write_report`` call in this process (tokenizer load included; the
process's imports are not, as at the end of ``tirl train``). With ``--browser``, also the time
headless Chromium takes to load the page until its views are built, and its console errors."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tirl.config import ReportSection
from tirl.report import write_report
from tirl.report.browser import Chromium
from tirl.report.runs import read_run


def count(run: Path) -> tuple[int, int]:
    files = sorted((run / "trajectories").glob("step_*.jsonl"))
    return len(files), sum(sum(1 for line in f.open() if line.strip()) for f in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--all", action="store_true", help="also embed every step and every task")
    ap.add_argument("--browser", action="store_true", help="also load each report in headless Chromium")
    args = ap.parse_args()
    settings = [("default", ReportSection())]
    if args.all:
        settings.append(("everything", ReportSection(steps=10**6, tasks=10**6, eval_tasks=10**6)))
    print(
        f"{'run':<28} {'setting':<11} {'steps':>5} {'trajs':>6} {'embedded':>8} {'MB':>6} {'s (median)':>10}"
        + ("  browser s, errors" if args.browser else "")
    )
    for run in args.runs:
        read_run(run)  # a clear error for a directory that is not a run
        steps, trajs = count(run)
        for name, opts in settings:
            times, size, embedded = [], 0, 0
            with tempfile.TemporaryDirectory() as tmp:
                for _ in range(args.repeats):
                    r = write_report([run], Path(tmp) / "r.html", opts)
                    times.append(r.seconds)
                    size = r.bytes
                embedded = (Path(tmp) / "r.html").read_text().count('"source":"train"')
                shown = ""
                if args.browser:
                    with Chromium() as b:
                        t0 = time.perf_counter()
                        b.open((Path(tmp) / "r.html").as_uri(), ready="document.body.dataset.ready === '1'")
                        shown = f"  {time.perf_counter() - t0:.2f} s, {len(b.errors)} errors {b.errors[:3] if b.errors else ''}"
            print(f"{run.name:<28} {name:<11} {steps:>5} {trajs:>6} {embedded:>8} {size / 1e6:>6.2f} {statistics.median(times):>10.2f}{shown}")


if __name__ == "__main__":
    main()
