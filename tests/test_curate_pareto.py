"""ET-Agent group-wise Pareto sampling: dominance, fronts, crowding distance, selection, the
mixed-outcome filter, and the next round's task file (hand-computed)."""

from __future__ import annotations

import math

import pytest

from tirl.curate.pareto import (
    crowding_distance,
    dominates,
    group_stats,
    non_dominated_sort,
    nsga2_select,
    select_tasks,
    variance,
    write_tasks,
)
from tirl.tasks import load_tasks
from tirl.types import Observation, Origin, Segment, Step, StopReason, Task, ToolCall, Trajectory

# A (0.25, 1) dominates B (0.25, 0) and D (0.1875, 0.5); C (0, 2) is only beaten on correctness
# variance; B and D do not dominate each other; everything dominates E (0, 0).
PTS = [(0.25, 1.0), (0.25, 0.0), (0.0, 2.0), (0.1875, 0.5), (0.0, 0.0)]


def test_dominance_and_fronts():
    assert dominates((0.25, 1.0), (0.25, 0.0)) and not dominates((0.25, 0.0), (0.25, 0.0))
    assert not dominates((0.25, 1.0), (0.0, 2.0)) and not dominates((0.0, 2.0), (0.25, 1.0))
    assert non_dominated_sort(PTS) == [[0, 2], [1, 3], [4]]


def test_crowding_distance_hand_computed():
    # a single front of four trade-off points
    front_pts = [(0.25, 0.0), (0.2, 1.0), (0.1, 1.5), (0.0, 3.0)]
    d = crowding_distance(front_pts, [0, 1, 2, 3])
    # objective 0 (range 0.25), ascending 3,2,1,0: d2 += (0.2-0)/0.25 = 0.8, d1 += (0.25-0.1)/0.25 = 0.6
    # objective 1 (range 3), ascending 0,1,2,3: d1 += (1.5-0)/3 = 0.5, d2 += (3-1)/3 = 0.6667
    assert d[0] == math.inf and d[3] == math.inf
    assert d[1] == pytest.approx(1.1) and d[2] == pytest.approx(0.8 + 2 / 3)
    # overflow front keeps the most spread-out points: 0 and 3 (∞), then 2 (1.4667) over 1 (1.1)
    assert nsga2_select(front_pts, 3) == [0, 3, 2]


def test_nsga2_select_fills_fronts_in_order():
    assert nsga2_select(PTS, 2) == [0, 2]
    assert nsga2_select(PTS, 4) == [0, 2, 1, 3]
    assert nsga2_select(PTS, 3) == [0, 2, 1]  # a two-member front is all boundary (∞): lower index wins
    assert nsga2_select(PTS, 10) == [0, 2, 1, 3, 4] and nsga2_select([], 3) == []


def _traj(answer, calls, stop=StopReason.ANSWER):
    segs, steps = [], []
    for _ in range(calls):
        segs += [Segment(Origin.POLICY, [1]), Segment(Origin.TOOL, [2])]
        steps.append(Step(len(segs) - 2, ToolCall("python", {"code": "1"}), Observation(True, "1"), len(segs) - 1))
    return Trajectory("t", 0, [0], segs, steps, answer=answer, stop_reason=stop)


def test_group_stats_and_mixed_filter():
    task = Task("m", "?", "7", {"verifier": "exact"})
    g = [_traj("7", 0), _traj("7", 1), _traj("8", 2), _traj("9", 3)]
    s = group_stats(task, g)
    # correctness [1,1,0,0]: mean .5, var .25; calls [0,1,2,3]: mean 1.5, var (2.25+.25+.25+2.25)/4 = 1.25
    assert (s.corr_var, s.tool_var, s.mixed) == (0.25, 1.25, True)
    assert variance([1, 1, 1]) == 0.0
    dead = _traj("7", 9, stop=StopReason.ERROR)
    assert group_stats(task, g + [dead]).tool_var == 1.25  # infra failures are not counted
    qa = Task("q", "?", ["paris"], {"verifier": "qa"})
    # F1 1.0 and 0.667 ("paris france" vs "paris"): both >= 0.75? no: 0.667 < 0.75 -> mixed
    assert group_stats(qa, [_traj("paris", 0), _traj("paris france", 0)]).mixed
    assert not group_stats(qa, [_traj("paris", 0), _traj("the paris", 0)]).mixed  # both F1 1.0


def test_select_tasks_filters_then_selects_and_round_trips(tmp_path):
    tasks = [Task(f"t{i}", f"q{i}", "7", {"verifier": "exact", "source": "arith"}) for i in range(3)]
    groups = [
        [_traj("7", 0), _traj("8", 4)],  # mixed: corr var .25, tool var 4
        [_traj("7", 1), _traj("7", 1)],  # all correct: filtered out
        [_traj("7", 1), _traj("8", 1)],  # mixed: corr var .25, tool var 0 (dominated by t0)
    ]
    sel = select_tasks(tasks, groups, n=1)
    assert [t.id for t in sel.tasks] == ["t0"] and sel.n_mixed == 2 and sel.n_candidates == 3
    assert [t.id for t in select_tasks(tasks, groups, n=5).tasks] == ["t0", "t2"]
    assert [t.id for t in select_tasks(tasks, groups, n=5, mixed_only=False).tasks] == ["t0", "t2", "t1"]
    path = write_tasks(sel.tasks, tmp_path / "next" / "tasks.jsonl")
    back = load_tasks(str(path), verifier="exact")
    assert [(t.id, t.prompt, t.answer) for t in back] == [("t0", "q0", "7")]
    with pytest.raises(ValueError, match="2 trajectory groups for 3 tasks"):
        select_tasks(tasks, groups[:2], n=1)
