"""The readable reference loop runs end to end on tiny-random (CI runs it on every change)."""

import math

from tirl.train.minimal import Args, main


def test_minimal_loop_runs(tmp_path):
    rows = main(Args(model="tiny-random", steps=2, tasks=2, group=2, max_tokens=16, out=str(tmp_path)))
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and r["reward"] <= 1.0 for r in rows)
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2
