"""ET-Agent efficiency reward, its σ schedule, OTC tool productivity and the Tool-Star bonus:
hand-computed values (arithmetic in the comments)."""

from __future__ import annotations

import math

import pytest

from tirl.rewards.base import RewardSpec
from tirl.rewards.compose import apply_rewards
from tirl.rewards.efficiency import (
    et_agent_reward,
    length_factors,
    multi_tool_bonus,
    otc_reward,
    otc_tool_score,
    reasoning_tokens,
    tool_factors,
    zscores,
)
from tirl.rewards.schedule import Progress, linear_decay
from tirl.types import Observation, Origin, Segment, Step, StopReason, Task, ToolCall, Trajectory

TASK = Task(id="t", prompt="?", answer="7", meta={"verifier": "exact"})


class FormatStub:
    """Only the protocol's format check matters to these rewards: text 'bad' violates it."""

    def format_error(self, text):
        return "broken" if text == "bad" else None


def traj(answer, calls=0, policy=10, tool=0, text="ok", tools=None, i=0):
    """``calls`` tool calls, ``policy`` policy tokens, ``tool`` tool tokens per call."""
    segs, steps = [], []
    names = tools or ["python"] * calls
    for _k, name in enumerate(names):
        segs.append(Segment(Origin.POLICY, [1] * 0))
        segs.append(Segment(Origin.TOOL, [2] * tool))
        steps.append(Step(len(segs) - 2, ToolCall(name, {"code": "1"}), Observation(True, "1"), len(segs) - 1))
    segs.append(Segment(Origin.POLICY, [3] * policy))
    steps.append(Step(len(segs) - 1))
    return Trajectory("t", i, [0], segs, steps, answer=answer, stop_reason=StopReason.ANSWER, text=text)


def test_zscores_population_std_and_constant_group():
    # [10, 20, 30]: mean 20, population var (100 + 0 + 100)/3, std 8.16497 -> z = ±10/8.16497 = ±1.224745
    assert zscores([10, 20, 30]) == pytest.approx([-1.224745, 0.0, 1.224745], abs=1e-6)
    assert zscores([5, 5, 5]) == [0.0, 0.0, 0.0]  # std 0: all z are 0 (released code)
    assert zscores([]) == []


def test_tool_and_length_factors_hand_computed():
    # calls [0, 1, 2], mean 1, σ 0.1: 2/(1+e^-0.1) = 1.049958, 2/(1+e^0) = 1, 2/(1+e^0.1) = 0.950042
    assert tool_factors([0, 1, 2], 0.1) == pytest.approx([1.049958, 1.0, 0.950042], abs=1e-6)
    # the paper's 1/(1+e^x) form is half of it
    assert tool_factors([0, 1, 2], 0.1, scale=1.0) == pytest.approx([0.524979, 0.5, 0.475021], abs=1e-6)
    # lengths [10, 20, 30]: z = ±1.224745, σ 0.1: 2/(1+e^-0.1224745) = 1.061161, 2/(1+e^0.1224745) = 0.938839
    assert length_factors([10, 20, 30], 0.1) == pytest.approx([1.061161, 1.0, 0.938839], abs=1e-6)
    assert tool_factors([0, 100], 0.0) == [1.0, 1.0]  # σ = 0: no shaping
    assert tool_factors([0, 10_000], 1.0) == pytest.approx([2.0, 0.0], abs=1e-9)  # no overflow


def test_reasoning_length_excludes_tool_tokens():
    t = traj("7", calls=2, policy=20, tool=50)
    assert reasoning_tokens(t) == 20 and t.n_tool_calls == 2


def test_et_agent_reward_hand_computed():
    group = [traj("7", calls=0, policy=10), traj("7", calls=1, policy=20, tool=50), traj("8", calls=2, policy=30)]
    r = et_agent_reward(FormatStub(), sigma_tool=0.1, sigma_len=0.1)(group, TASK)
    # t0: correct, fewest calls (f_tool 1.049958) and shortest (f_len 1.061161): 1.049958 * 1.061161 = 1.114175
    # t1: at both group means: 1 * 1 * 1 = 1 (its 50 tool tokens do not count as reasoning length)
    # t2: wrong: 0 * f * f + 0 = 0
    assert r == pytest.approx([1.114175, 1.0, 0.0], abs=1e-6)


def test_et_agent_format_penalty_is_added():
    group = [traj("7", text="bad"), traj("8", text="bad"), traj("7")]
    r = et_agent_reward(FormatStub(), 0.1, 0.1, format_violation=-1.0)(group, TASK)
    # equal calls and lengths: every factor is 1; R = R_corr + R_format
    assert r == pytest.approx([0.0, -1.0, 1.0])


def test_sigma_decays_linearly_over_the_round():
    p = Progress(step=0, total=3)
    # factor (T-1-s)/(T-1): s=0 -> 1, s=1 -> 0.5, s=2 -> 0
    assert [linear_decay(Progress(s, 3)) for s in range(3)] == [1.0, 0.5, 0.0]
    assert linear_decay(None) == 1.0 and linear_decay(Progress(0, 1)) == 1.0
    fn = et_agent_reward(FormatStub(), sigma_tool=0.1, sigma_len=0.0, progress=p)
    group = [traj("7", calls=0), traj("7", calls=2)]  # mean calls 1
    assert fn(group, TASK)[0] == pytest.approx(1.049958, abs=1e-6)  # σ 0.1: 2/(1+e^-0.1)
    p.step = 1
    assert fn(group, TASK)[0] == pytest.approx(1.024995, abs=1e-6)  # σ 0.05: 2/(1+e^-0.05)
    p.step = 2
    assert fn(group, TASK) == [1.0, 1.0]  # σ 0: plain correctness at the end of the round
    with pytest.raises(ValueError, match="σ must be >= 0"):
        et_agent_reward(FormatStub(), sigma_tool=-1)


def test_et_agent_through_apply_rewards_skips_infra_errors():
    dead = traj("7", calls=4)
    dead.stop_reason = StopReason.ERROR
    group = [traj("7", calls=0), traj("7", calls=2), dead]
    apply_rewards([(TASK, group)], [RewardSpec("eff", et_agent_reward(FormatStub(), 0.1, 0.0))])
    # the dead trajectory is out of the group: mean calls over the two live ones = 1
    assert group[0].reward == pytest.approx(1.049958, abs=1e-6) and group[2].rewards == {}


def test_otc_tool_score_hand_computed():
    assert otc_tool_score(0, 0) == 1.0
    assert otc_tool_score(2, 2) == pytest.approx(1.0)  # f = 2*2*2/4 = 2 = n: sin(π/2)
    # m=3, n=2: f = 12/5 = 2.4, sin(2.4π/4) = sin(0.6π) = 0.951057
    assert otc_tool_score(3, 2) == pytest.approx(0.951057, abs=1e-6)
    # m=1, n=2: f = 4/3, sin((4/3)π/4) = sin(π/3) = 0.866025
    assert otc_tool_score(1, 2) == pytest.approx(math.sqrt(3) / 2)
    assert otc_tool_score(0, 2) == 0.0  # f = 0: a correct answer that skipped the needed tool
    # n = 0 < m: cos(mπ/(2m+1)); m=2: cos(2π/5) = 0.309017
    assert otc_tool_score(2, 0) == pytest.approx(0.309017, abs=1e-6)


def test_otc_reward_uses_fewest_calls_among_correct():
    group = [traj("7", calls=2), traj("7", calls=3), traj("8", calls=1)]
    # n = min calls among correct = 2 (the wrong one's 1 call does not count)
    r = otc_reward(alpha=1.0)(group, TASK)
    assert r == pytest.approx([1.0, 0.951057, 0.0], abs=1e-6)
    assert otc_reward()([traj("8"), traj("9")], TASK) == [0.0, 0.0]  # no correct member


def test_multi_tool_bonus():
    both = traj("7", tools=["search", "python"])
    only = traj("7", tools=["python", "python"])
    wrong = traj("8", tools=["search", "python"])
    assert multi_tool_bonus()([both, only, wrong], TASK) == [0.1, 0.0, 0.0]


def test_config_rewards_select_the_main_term():
    from tirl.config import load_config
    from tirl.rewards.presets import config_rewards
    from tirl.rewards.rm import rm_combine

    names = lambda specs: [(s.name, s.weight) for s in specs]  # noqa: E731
    cfg = load_config(None, ["reward.efficiency.enabled=true", "reward.otc_alpha=0.5", "reward.multi_tool_bonus=0.1"])
    specs = config_rewards(cfg.reward, FormatStub(), 384, Progress(0, 10))
    assert names(specs) == [("efficiency", 1.0), ("correct", 0.0), ("format_ok", 0.0), ("outcome", 0.0), ("otc", 1.0), ("multi_tool", 1.0)]
    assert names(config_rewards(load_config().reward, FormatStub(), 384))[0] == ("outcome", 1.0)
    with pytest.raises(ValueError, match="no reward model was loaded"):
        config_rewards(load_config(None, ["reward.rm.path=somewhere"]).reward, FormatStub(), 384)
    # AutoTraj: max(S, S + w*rm) for S > 0 (0.2 * -3 would lower 1.0: kept at 1.0), wrong stays 0
    assert rm_combine(1.0, 2.0, 0.2) == pytest.approx(1.4)
    assert rm_combine(1.0, -3.0, 0.2) == 1.0 and rm_combine(0.0, 5.0, 0.2) == 0.0 and rm_combine(-1.0, 5.0, 0.2) == -1.0


def test_rm_outcome_scores_only_positive_outcomes():
    from tirl.rewards.rm import rm_outcome

    class Scorer:
        seen: list = []

        def score(self, tasks, completions):
            Scorer.seen.append(list(completions))
            return [2.0 for _ in completions]

    group = [traj("7", text="good"), traj("8", text="wrong"), traj("7", text="bad")]
    r = rm_outcome(FormatStub(), Scorer(), weight=0.2)(group, TASK)
    # correct -> 1 + 0.2*2 = 1.4; wrong -> 0 (never sent to the RM); malformed -> -1
    assert r == pytest.approx([1.4, 0.0, -1.0]) and Scorer.seen == [["good"]]
