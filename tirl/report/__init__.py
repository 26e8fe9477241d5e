"""``tirl report``: a run (or several) as one self-contained HTML file, with the config, the
evaluations, the learning curves, a trajectory browser, a rollout-tree view and the evaluation
trajectories side by side (docs/DESIGN.md, "The report").

- ``runs.py``: a run directory read back (config, metrics, status); ``tirl runs`` lists them;
- ``select.py``: which steps, tasks and held-out tasks the report embeds;
- ``tokens.py``: token ids back to per-token text with the run's tokenizer;
- ``trajectories.py``, ``trees.py``: a trajectory and a rollout tree as the viewer shows them;
- ``extract.py``: a run directory into a ``RunView``; ``model.py``: the typed views;
- ``html.py`` and ``assets/``: the page, its stylesheet and scripts, inlined.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tirl.config import ReportSection
from tirl.report.runs import ReportError

__all__ = ["ReportError", "ReportResult", "write_report"]


@dataclass
class ReportResult:
    path: Path
    bytes: int
    seconds: float


def write_report(run_dirs: list[Path], out: Path, opts: ReportSection | None = None) -> ReportResult:
    """Write the report of ``run_dirs`` to ``out`` (atomically: a reader never sees half a file)."""
    from tirl.report.extract import Tokenizers, load_run
    from tirl.report.html import render
    from tirl.report.model import ReportData

    t0 = time.perf_counter()
    opts = opts or ReportSection()
    if not run_dirs:
        raise ReportError("no run to report on")
    tokenizers = Tokenizers()
    runs = [load_run(Path(d), i, opts, tokenizers) for i, d in enumerate(run_dirs)]
    title = "tirl report: " + ", ".join(r.name for r in runs)
    page = render(ReportData(title=title, generated=datetime.now().isoformat(timespec="seconds"), runs=runs))
    out = Path(out)
    if out.is_dir():
        raise ReportError(f"--out {out} is a directory; name the HTML file to write")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=out.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, out)
    except OSError as e:
        raise ReportError(f"cannot write the report to {out}: {e.strerror or e}") from None
    return ReportResult(out, len(page.encode("utf-8")), time.perf_counter() - t0)
