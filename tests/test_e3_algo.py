"""E3-TIR's pure functions against hand-computed values: LUFFY's regularised importance weight,
the hybrid advantage, AAGD, the expert-share schedule, anchor selection and ROI."""

import math

import pytest
import torch

from tirl.algo import AdvantageConfig, LossConfig, LossInput
from tirl.algo.mixed import HybridConfig, aagd_nodes, expert_share, hybrid_advantages
from tirl.algo.offpolicy import regularized_is
from tirl.eval.roi import RunCost, relative_roi, roi
from tirl.rollout.e3 import anchor_candidates, boundary_scores, choose_anchors, spread
from tirl.rollout.io import tree_from_json
from tirl.types import Origin, RolloutTree, Segment, Step, ToolCall, Trajectory


def _inp(p, adv, mask=None):
    logp = torch.tensor([[math.log(x) for x in p]], requires_grad=True)
    z = torch.zeros_like(logp)
    m = torch.ones_like(z) if mask is None else torch.tensor([mask])
    return LossInput(logp, z, torch.tensor([adv]), m, z, z)


def test_regularized_is_hand_computed():
    # gamma 0.1. p = 0.4, A = 2:   f = 0.4 / 0.5 = 0.8            -> loss -0.8 * 2 = -1.6
    #                              d loss / d logp = -A * p * gamma / (p + gamma)^2 = -2 * 0.04 / 0.25 = -0.32
    # p = 0.1, A = -1:             f = 0.1 / 0.2 = 0.5            -> loss 0.5
    #                              d loss / d logp = 1 * 0.1 * 0.1 / 0.04 = 0.25
    # p = 0.9, A = 1:              f = 0.9 / 1.0 = 0.9            -> loss -0.9
    #                              d loss / d logp = -0.9 * 0.1 / 1.0 = -0.09 (a likely token moves little)
    x = _inp([0.4, 0.1, 0.9], [2.0, -1.0, 1.0])
    out = regularized_is(x, LossConfig(offpolicy_gamma=0.1))
    assert torch.allclose(out.loss_BT, torch.tensor([[-1.6, 0.5, -0.9]]), atol=1e-6)
    assert torch.allclose(out.ratio_BT, torch.tensor([[0.8, 0.5, 0.9]]), atol=1e-6)
    assert not out.clipped_BT.any()
    out.loss_BT.sum().backward()
    assert torch.allclose(x.logp_BT.grad, torch.tensor([[-0.32, 0.25, -0.09]]), atol=1e-6)
    # gamma 1: p = 0.4 -> f = 0.4 / 1.4 = 0.285714
    out = regularized_is(_inp([0.4], [1.0]), LossConfig(offpolicy_gamma=1.0))
    assert out.loss_BT.item() == pytest.approx(-0.4 / 1.4)
    with pytest.raises(ValueError, match="gamma"):
        regularized_is(_inp([0.4], [1.0]), LossConfig(offpolicy_gamma=0.0))


def test_hybrid_advantage_hand_computed():
    # one task: self s1 = 1, s2 = 0; expert e = 1; continuations of one anchor a1 = 1, a2 = 0
    R = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    sub = torch.tensor([0, 0, 1, 2, 2])
    g = torch.zeros(5, dtype=torch.long)
    # global: mean 3/5 = 0.6, population var = (3 * 0.4^2 + 2 * 0.6^2) / 5 = 0.24, std 0.489898
    #   A_global = [0.816497, -1.224745, 0.816497, 0.816497, -1.224745]
    # tree: self {1, 0} -> +-1; anchor {1, 0} -> +-1; the expert is alone -> A_tree = A_global
    # alpha 0.5: s1 = 0.5 * 0.816497 + 0.5 * 1 = 0.908248; s2 = 0.5 * -1.224745 - 0.5 = -1.112372;
    #            e = 0.816497; a1 = 0.908248; a2 = -1.112372
    cfg = HybridConfig(alpha=0.5, adv=AdvantageConfig(eps=0.0))
    a = hybrid_advantages(R, g, sub, cfg)
    assert torch.allclose(a, torch.tensor([0.908248, -1.112372, 0.816497, 0.908248, -1.112372]), atol=1e-5)
    # singleton "zero": the expert gets 0.5 * 0.816497 = 0.408248
    a = hybrid_advantages(R, g, sub, HybridConfig(alpha=0.5, singleton="zero", adv=AdvantageConfig(eps=0.0)))
    assert a[2].item() == pytest.approx(0.408248, abs=1e-5)
    # alpha 1 is GRPO over the task; alpha 0 is GRPO within each sub-tree
    a1 = hybrid_advantages(R, g, sub, HybridConfig(alpha=1.0, adv=AdvantageConfig(eps=0.0)))
    assert torch.allclose(a1, torch.tensor([0.816497, -1.224745, 0.816497, 0.816497, -1.224745]), atol=1e-5)
    a0 = hybrid_advantages(R, g, sub, HybridConfig(alpha=0.0, adv=AdvantageConfig(eps=0.0)))
    assert torch.allclose(a0, torch.tensor([1.0, -1.0, 0.816497, 1.0, -1.0]), atol=1e-5)


def test_hybrid_subgroups_are_per_task():
    # two tasks reuse sub-group id 0; they must not be pooled: task 0 {1, 0} -> +-1, task 1 {2, 0} -> +-1
    R = torch.tensor([1.0, 0.0, 2.0, 0.0])
    a = hybrid_advantages(R, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 0, 0]), HybridConfig(alpha=0.0, adv=AdvantageConfig(eps=0.0)))
    assert torch.allclose(a, torch.tensor([1.0, -1.0, 1.0, -1.0]))
    # Dr. GRPO as the base: no std division. Task 0 mean 0.5 -> +-0.5; task 1 mean 1 -> +-1
    a = hybrid_advantages(R, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 0, 0]), HybridConfig(alpha=0.5, base="dr_grpo"))
    assert torch.allclose(a, torch.tensor([0.5, -0.5, 1.0, -1.0]))
    with pytest.raises(ValueError, match="alpha"):
        hybrid_advantages(R, torch.zeros(4), torch.zeros(4), HybridConfig(alpha=1.5))
    with pytest.raises(ValueError, match="base"):
        hybrid_advantages(R, torch.zeros(4), torch.zeros(4), HybridConfig(base="ppo"))


def _tree(c4: float) -> tuple[RolloutTree, dict[str, float]]:
    """root -> s1 (self); root -> e1 (expert step 1) -> e2 (expert step 2) -> E (expert answer);
    continuations c1, c2 from after e1, c3, c4 from after e2."""
    leaf = lambda i, r: {"id": i, "reward": r}
    d = {
        "id": "0",
        "children": [
            leaf("0.0", 1.0),
            {
                "id": "0.1",
                "children": [
                    {"id": "0.1.0", "children": [leaf("0.1.0.0", 1.0), leaf("0.1.0.1", 1.0), leaf("0.1.0.2", 1.0)]},
                    leaf("0.1.1", 1.0),
                    leaf("0.1.2", 0.0),
                ],
            },
        ],
    }
    adv = {"0.0": 0.3, "0.1.1": 1.0, "0.1.2": -0.5, "0.1.0.1": 0.2, "0.1.0.2": c4}  # the expert leaf 0.1.0.0 is not sampled
    return tree_from_json(d), adv


def test_aagd_hand_built_tree():
    tree, adv = _tree(c4=0.4)
    # node 0.1 (expert step 1) is shared by c1 (+1), c2 (-0.5), c3 (+0.2), c4 (+0.4): signs disagree -> detached in all four;
    # node 0.1.0 (expert step 2) is shared by c3, c4 (both +): kept; s1 shares nothing (the root is never trained)
    cut = aagd_nodes(tree, adv, "sign")
    assert cut == {"0.0": set(), "0.1.1": {"0.1"}, "0.1.2": {"0.1"}, "0.1.0.1": {"0.1"}, "0.1.0.2": {"0.1"}}
    # c4 negative: now 0.1.0 disagrees too (+0.2 vs -0.4)
    tree, adv = _tree(c4=-0.4)
    assert aagd_nodes(tree, adv, "sign")["0.1.0.2"] == {"0.1", "0.1.0"}
    # always: every shared node; off: nothing
    tree, adv = _tree(c4=0.4)
    assert aagd_nodes(tree, adv, "always")["0.1.0.1"] == {"0.1", "0.1.0"}
    assert all(not v for v in aagd_nodes(tree, adv, "never").values())
    # a zero advantage disagrees with nobody: c2 = 0 leaves 0.1 with {+1, 0, +0.2, +0.4}
    adv["0.1.2"] = 0.0
    assert aagd_nodes(tree, adv, "sign")["0.1.1"] == set()
    with pytest.raises(KeyError, match="not leaves"):
        aagd_nodes(tree, {"0.1": 1.0}, "sign")
    with pytest.raises(ValueError, match="mode"):
        aagd_nodes(tree, adv, "sometimes")


def test_expert_share_schedule():
    # linear over 4 steps from 1: 1, 0.75, 0.5, 0.25, then 0 (plain GRPO)
    assert [expert_share(s, 4) for s in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    # from 0.5: 0.5, 0.375, ...
    assert expert_share(1, 4, start=0.5) == 0.375
    assert [expert_share(s, 2, 0.8, "constant") for s in range(3)] == [0.8, 0.8, 0.0]
    assert expert_share(0, 0) == 0.0  # no warm-up: GRPO from the first step
    with pytest.raises(ValueError):
        expert_share(0, 4, schedule="cosine")
    with pytest.raises(ValueError):
        expert_share(0, 4, start=1.5)


def test_anchor_selection():
    # entropies 0.2, 1.5, 1.5, 0.7: top 2 are indices 1 and 2 (tie: the earlier first)
    assert choose_anchors([0.2, 1.5, 1.5, 0.7], 2) == [1, 2]
    assert choose_anchors([0.2], 3) == [0]
    assert spread(4, 2) == [2, 2] and spread(5, 2) == [3, 2] and spread(4, 3) == [2, 1, 1]
    # window 2 at starts 1 and 3 of [0, 1, 3, 5, 7]: (1 + 3) / 2 = 2, (5 + 7) / 2 = 6; a window past the end is cut
    assert boundary_scores([0, 1, 3, 5, 7], [1, 3], 2, 5) == [2.0, 6.0]
    assert boundary_scores([0, 1, 3, 5, 7], [4], 3, 5) == [7.0]


def test_anchor_candidates_are_step_starts_after_tool_results():
    # prompt 3 ids; expert step (2 ids) + tool (2) + expert step (3) + tool (1) + final (2)
    seg = lambda o, n: Segment(o, list(range(n)))
    tr = Trajectory(
        "t", 0, [9, 9, 9], segments=[seg(Origin.EXPERT, 2), seg(Origin.TOOL, 2), seg(Origin.EXPERT, 3), seg(Origin.TOOL, 1), seg(Origin.EXPERT, 2)]
    )
    call = ToolCall("python", {"code": "1"})
    tr.steps = [Step(0, call, None, 1), Step(2, call, None, 3), Step(4)]
    # boundary after step 1: the second step starts at 3 + 2 + 2 = 7; after step 2: 7 + 3 + 1 = 11
    assert anchor_candidates(tr) == [(1, 7), (2, 11)]
    tr.steps = [Step(0, call, None, 1), Step(2, call, None, 3)]  # nothing follows the last tool result
    assert anchor_candidates(tr) == [(1, 7)]


def test_roi_hand_computed():
    # base 0.20; SFT-then-RL: 0.50 with 512 expert samples and 1.0e6 tokens -> cost 1 + 1 = 2, ROI 0.30 / 2 = 0.15
    assert roi(0.5, 0.2, 512, 1e6, 512, 1e6) == pytest.approx(0.15)
    # E3-TIR: 0.56 with 51 samples and 1.2e6 tokens -> cost 51/512 + 1.2 = 1.2996094, ROI 0.36 / 1.2996094 = 0.2770065
    assert roi(0.56, 0.2, 51, 1.2e6, 512, 1e6) == pytest.approx(0.36 / (51 / 512 + 1.2))
    ref = RunCost(0.5, 512, 1e6)
    # relative: 0.2770065 / 0.15 = 1.846710
    assert relative_roi(RunCost(0.56, 51, 1.2e6), ref, 0.2) == pytest.approx((0.36 / (51 / 512 + 1.2)) / 0.15)
    assert relative_roi(ref, ref, 0.2) == pytest.approx(1.0)
    # zero-RL: no expert data, 0.9e6 tokens, 0.45 -> cost 0.9, ROI 0.25 / 0.9 = 0.2778, 1.85x
    assert relative_roi(RunCost(0.45, 0, 0.9e6), ref, 0.2) == pytest.approx((0.25 / 0.9) / 0.15)
    # a reference that did not improve makes every multiple meaningless
    assert math.isnan(relative_roi(RunCost(0.5, 0, 1), RunCost(0.2, 512, 1e6), 0.2))
    with pytest.raises(ValueError, match="references"):
        roi(0.5, 0.2, 1, 1, 0, 1e6)
