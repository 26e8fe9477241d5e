"""Time to turn a Hugging Face dataset into tirl tasks (``task.name=hf``), offline.

Writes a GSM8K-shaped dataset of ``rows`` rows (question / worked answer ending ``#### N``) as a
Parquet file and as a ``save_to_disk`` DatasetDict, then times ``load_tasks("hf", ...)`` with the
``gsm8k`` preset: the first load of the Parquet file (``datasets`` converts it into its Arrow
cache), a second load (from the cache) and a load of the saved directory (memory-mapped Arrow).
Medians over ``repeats``, each in a fresh cache. Prints a markdown table.

    python bench/hf_tasks.py --rows 7473     # GSM8K's train split has 7,473 rows
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=7473)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    import datasets

    from tirl.tasks import load_tasks

    datasets.disable_progress_bars()
    datasets.config.HF_HUB_OFFLINE = True
    rows = [
        {
            "question": f"A shop sells {i} pens on Monday and {2 * i} on Tuesday. How many pens in all?",
            "answer": f"{i} + {2 * i} = {3 * i}\n#### {3 * i:,}",
        }
        for i in range(args.rows)
    ]
    times: dict[str, list[float]] = {"parquet, first load": [], "parquet, cached": [], "save_to_disk": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as d:
            datasets.config.HF_DATASETS_CACHE = Path(d) / "cache"
            ds = datasets.Dataset.from_list(rows)
            ds.to_parquet(f"{d}/gsm8k.parquet")
            datasets.DatasetDict({"train": ds}).save_to_disk(f"{d}/saved")
            for name, path in [
                ("parquet, first load", f"{d}/gsm8k.parquet"),
                ("parquet, cached", f"{d}/gsm8k.parquet"),
                ("save_to_disk", f"{d}/saved"),
            ]:
                t0 = time.perf_counter()
                tasks = load_tasks("hf", path=path, split="train", preset="gsm8k")
                times[name].append(time.perf_counter() - t0)
                assert len(tasks) == args.rows and tasks[-1].answer == str(3 * (args.rows - 1))
    print(f"| source ({args.rows} rows, preset gsm8k) | seconds (median of {args.repeats}) | tasks/s |")
    print("|---|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.3f} | {args.rows / med:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
