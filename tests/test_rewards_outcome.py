"""score_answer dispatch, the correctness reward, the gold self-test, apply_rewards."""

from __future__ import annotations

import pytest

from tirl.rewards.base import RewardSpec
from tirl.rewards.compose import RewardError, apply_rewards
from tirl.rewards.outcome import correctness, gold_self_test
from tirl.rewards.verify import score_answer
from tirl.types import StopReason, Task, Trajectory


def _traj(answer, stop=StopReason.ANSWER, i=0):
    return Trajectory(task_id="t", sample=i, prompt_token_ids=[1], answer=answer, stop_reason=stop)


MATH = Task(id="m", prompt="?", answer="12345", meta={"verifier": "math"})
QA = Task(id="q", prompt="?", answer=["New York City", "NYC"], meta={"verifier": "qa"})
EXACT = Task(id="e", prompt="?", answer="B", meta={"verifier": "exact"})


def test_score_answer_dispatch():
    assert score_answer(MATH, "12,345") == 1.0
    assert score_answer(MATH, "12346") == 0.0
    assert score_answer(MATH, None) == 0.0
    assert score_answer(QA, "new york") == pytest.approx(0.8)
    assert score_answer(QA, "nyc") == 1.0
    assert score_answer(EXACT, " B ") == 1.0 and score_answer(EXACT, "b") == 0.0
    alt = Task(id="a", prompt="?", answer=["(2, 1)", "\\text{two and one}"], meta={})  # default: math
    assert score_answer(alt, "(2,1)") == 1.0 and score_answer(alt, "x=2, y=1") == 1.0
    assert score_answer(alt, "two and one") == 1.0 and score_answer(alt, "(1,2)") == 0.0


def test_unknown_verifier_is_a_clear_error():
    with pytest.raises(ValueError, match=r"verifier 'regex'; known verifiers: exact, math, qa"):
        score_answer(Task(id="z", prompt="?", answer="1", meta={"verifier": "regex"}), "1")


def test_correctness_reward():
    group = [_traj("12345"), _traj("\\frac{24690}{2}"), _traj("1"), _traj(None)]
    assert correctness(group, MATH) == [1.0, 1.0, 0.0, 0.0]


def test_gold_self_test_catches_bad_golds():
    good = [MATH, QA, EXACT, Task(id="frac", prompt="?", answer="\\frac{1}{2}", meta={})]
    assert gold_self_test(good) == []
    bad = [
        Task(id="unbalanced", prompt="?", answer="\\frac{1}{2", meta={}),  # cannot be boxed and extracted back
        Task(id="empty", prompt="?", answer="", meta={}),
        Task(id="bad-alt", prompt="?", answer=["3", "}{"], meta={}),
    ]
    assert gold_self_test(bad) == ["unbalanced", "empty", "bad-alt"]


def test_apply_rewards_weights_components_and_skips_errors():
    def length_bonus(group, task):
        return [0.5 if t.answer and len(t.answer) > 3 else 0.0 for t in group]

    seen_sizes = []

    def group_size_metric(group, task):
        seen_sizes.append(len(group))
        return [float(len(group))] * len(group)

    crashed = _traj("12345", stop=StopReason.ERROR, i=2)
    crashed.rewards = {"stale": 1.0}
    crashed.reward = 3.0
    group = [_traj("12345", i=0), _traj("7", i=1), crashed]
    specs = [
        RewardSpec("correctness", correctness, 1.0),
        RewardSpec("length", length_bonus, -2.0),
        RewardSpec("group_size", group_size_metric, 0.0),
    ]
    apply_rewards([(MATH, group)], specs)
    a, b, c = group
    assert a.rewards == {"correctness": 1.0, "length": 0.5, "group_size": 2.0}
    assert a.reward == pytest.approx(1.0 - 1.0)
    assert b.rewards == {"correctness": 0.0, "length": 0.0, "group_size": 2.0} and b.reward == 0.0
    assert c.rewards == {} and c.reward == 0.0  # an infrastructure failure is not scored
    assert seen_sizes == [2]  # group statistics exclude it


def test_apply_rewards_all_errors_calls_nothing():
    def boom(group, task):
        raise AssertionError("must not be called")

    group = [_traj("1", stop=StopReason.ERROR)]
    apply_rewards([(MATH, group)], [RewardSpec("boom", boom)])
    assert group[0].rewards == {}


def test_apply_rewards_contract_errors():
    group = [_traj("1"), _traj("2", i=1)]
    with pytest.raises(RewardError, match=r"reward 'short' returned 1 values for 2 trajectories of task 'm'"):
        apply_rewards([(MATH, group)], [RewardSpec("short", lambda g, t: [1.0])])
    with pytest.raises(RewardError, match=r"reward 'nan' returned nan"):
        apply_rewards([(MATH, group)], [RewardSpec("nan", lambda g, t: [float("nan"), 0.0])])
    with pytest.raises(RewardError, match=r"reward 'str' returned '1'"):
        apply_rewards([(MATH, group)], [RewardSpec("str", lambda g, t: ["1", 0.0])])
    with pytest.raises(RewardError, match="repeated: c"):
        apply_rewards([(MATH, group)], [RewardSpec("c", correctness), RewardSpec("c", correctness)])
