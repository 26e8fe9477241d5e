"""The README's screenshots of the HTML report, taken in headless Chromium from the current code:

    python scripts/report_screenshots.py --trajectory-run RUN --tree-run ELPO_RUN [--out docs/img]

- ``report_trajectory.png``: the trajectory browser with "tool errors only" ticked, showing the
  first trajectory whose tool call failed, with the entropy heat map on;
- ``report_elpo_tree.png``: the tree view of an ELPO run, on the first tree with a critical step,
  with the panel of the first fork below the root.
Only the view is captured (not the page's header, which names the run's directory).

The runs are only read; the reports are written to a temporary directory."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tirl.report import write_report
from tirl.report.browser import Chromium

READY = "document.body.dataset.ready === '1'"


def trajectory_shot(run: Path, out: Path, tmp: Path) -> Path:
    html = write_report([run], tmp / "trajectory.html").path
    with Chromium(width=1360, height=1000) as b:
        b.open(html.as_uri(), ready=READY)
        b.click("#tabs button[data-tab=trajectories]")
        b.click("#tb-toolerr")
        b.click("input[name=heat][value=entropy]")
        shot = b.screenshot(out / "report_trajectory.png", selector="#tab-trajectories", max_height=900)
        if b.errors:
            raise SystemExit(f"the page reported errors: {b.errors}")
    return shot


def tree_shot(run: Path, out: Path, tmp: Path) -> Path:
    html = write_report([run], tmp / "tree.html").path
    with Chromium(width=1360, height=760) as b:
        b.open(html.as_uri(), ready=READY)
        b.click("#tabs button[data-tab=trees]")
        data = json.loads(b.evaluate("document.getElementById('tirl-data').textContent"))
        steps = data["runs"][0]["steps"]
        found = next(((s, t) for s in steps for t in s["trees"] if t["critical"] and any(n["fork"] and n["parent"] for n in t["nodes"])), None)
        found = found or next(((s, t) for s in steps for t in s["trees"] if t["critical"]), None)
        if found is None:
            raise SystemExit(f"{run} has no ELPO tree with a critical step")
        step, tree = found
        for sel, value in (("tr-step", step["step"]), ("tr-task", tree["task_id"])):
            b.evaluate(
                f"(() => {{ const s = document.getElementById('{sel}'); s.value = {json.dumps(str(value))}; s.dispatchEvent(new Event('change')); }})()"
            )
        node = next((n for n in tree["nodes"] if n["fork"] and n["parent"]), None) or next(n for n in tree["nodes"] if n["critical"])
        b.evaluate(f"document.querySelector('#tree-svg .node[data-id=\"{node['id']}\"]').dispatchEvent(new MouseEvent('mouseenter'))")
        shot = b.screenshot(out / "report_elpo_tree.png", selector="#tab-trees", max_height=700)
        if b.errors:
            raise SystemExit(f"the page reported errors: {b.errors}")
    return shot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectory-run", type=Path, required=True, help="a run whose rollouts have failed tool calls")
    ap.add_argument("--tree-run", type=Path, required=True, help="an ELPO run")
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for shot in (trajectory_shot(args.trajectory_run, args.out, Path(tmp)), tree_shot(args.tree_run, args.out, Path(tmp))):
            print(shot)


if __name__ == "__main__":
    main()
