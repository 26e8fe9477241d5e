"""bench/reproduce.py --quick on tiny-random: the table has a row per recipe with mean ± 95%
half-width over two seeds, every recipe trains on the same number of trajectories, the claims
table pairs each recipe with GRPO seed by seed, and a second run reads the results instead of
training again."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", BENCH / "reproduce.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_quick_table(tmp_path):
    rep = _reproduce()
    argv = ["--quick", "--recipes", "grpo,elpo,et_agent", "--seeds", "0,1", "--out", str(tmp_path)]
    res = rep.main(argv)["results"]
    assert list(res) == ["start", "grpo", "elpo", "et_agent"]
    assert all([r["seed"] for r in rows] == [0, 1] for rows in res.values())
    # equal budgets: 2 steps x 1 task x 2 trajectories, for every recipe and seed
    assert {r["train_trajectories"] for name, rows in res.items() if name != "start" for r in rows} == {4}
    assert {r["budget"] for name, rows in res.items() if name != "start" for r in rows} == {4}
    md = (tmp_path / "results.md").read_text()
    table = [line for line in md.split("\n\n")[1].splitlines() if "±" in line]  # the results table
    assert [line.split(" | ")[0] for line in table] == ["| start", "| grpo", "| elpo", "| et_agent"]
    claims = [line for line in md.splitlines() if line.startswith(("| elpo | ELPO", "| et_agent | ET-Agent"))]
    assert len(claims) == 2 and all(line.rstrip(" |").endswith(("reproduced", "inconclusive")) for line in claims)
    assert "tree depth" in md
    # a second run reads every result.json: nothing is trained again
    stamp = {p: p.stat().st_mtime for p in tmp_path.glob("seed*/*/result.json")}
    assert len(stamp) == 8
    again = rep.main(argv)["results"]
    assert json.dumps(again, sort_keys=True) == json.dumps(res, sort_keys=True)
    assert {p: p.stat().st_mtime for p in tmp_path.glob("seed*/*/result.json")} == stamp
