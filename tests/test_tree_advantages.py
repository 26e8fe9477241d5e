"""Tree credit on hand-built trees, with every expected number computed by hand below:
ELPO's hierarchical advantage (arXiv 2602.09598 Eq. 6-10), ARPO's hard attribution, ELC bounds."""

import math

import pytest

from tirl.algo.tree_advantages import elc_clip_low, hierarchical_advantages, leaf_mean_advantages
from tirl.rollout.tree import RolloutTree

EPS = 1e-6

# root r
#  ├─ a
#  │   ├─ a1 (R=1)
#  │   └─ a2
#  │       ├─ a2x (R=0)
#  │       └─ a2y (R=1)
#  ├─ b (R=0)
#  └─ c
#      └─ c1 (R=0)        c1 is an only child
TREE = {
    "id": "r",
    "children": [
        {"id": "a", "children": [
            {"id": "a1", "reward": 1.0},
            {"id": "a2", "children": [{"id": "a2x", "reward": 0.0}, {"id": "a2y", "reward": 1.0}]},
        ]},
        {"id": "b", "reward": 0.0},
        {"id": "c", "children": [{"id": "c1", "reward": 0.0}]},
    ],
}


def test_hierarchical_advantages_by_hand():
    adv = hierarchical_advantages(RolloutTree.from_json(TREE), lam=0.5, eps=EPS)
    assert set(adv) == {"a", "a1", "a2", "a2x", "a2y", "b", "c", "c1"}  # every non-root node, no root

    # Eq. 6, node rewards (recursive mean over direct children):
    #   a2 = (0 + 1)/2 = 0.5;  a = (a1 + a2)/2 = (1 + 0.5)/2 = 0.75;  b = 0;  c = c1 = 0
    # Eq. 7, branch advantages among siblings (population std):
    #   root's children a, b, c: r = 0.75, 0, 0; mean 0.25; var = (0.5² + 0.25² + 0.25²)/3 = 0.125
    s_root = math.sqrt(0.125)
    ab = {"a": 0.5 / (s_root + EPS), "b": -0.25 / (s_root + EPS), "c": -0.25 / (s_root + EPS)}
    #   a's children a1, a2: r = 1, 0.5; mean 0.75; std 0.25
    ab.update({"a1": 0.25 / (0.25 + EPS), "a2": -0.25 / (0.25 + EPS)})
    #   a2's children: r = 0, 1; mean 0.5; std 0.5
    ab.update({"a2x": -0.5 / (0.5 + EPS), "a2y": 0.5 / (0.5 + EPS)})
    #   c1 is an only child
    ab["c1"] = 0.0
    # Eq. 8, trajectory advantage over the 5 leaves (1, 0, 1, 0, 0): mean 0.4, var = (2·0.6² + 3·0.4²)/5 = 0.24
    s_t = math.sqrt(0.24)
    win, lose = 0.6 / (s_t + EPS), -0.4 / (s_t + EPS)  # ≈ 1.2247, -0.8165
    # Eq. 9, a node's A_t is the mean over the leaves below it
    at = {"a1": win, "a2x": lose, "a2y": win, "b": lose, "c1": lose, "c": lose,
          "a2": (lose + win) / 2, "a": (win + lose + win) / 3}
    # Eq. 10 with lambda = 0.5
    for nid in adv:
        assert adv[nid] == pytest.approx(0.5 * ab[nid] + 0.5 * at[nid], abs=1e-9), nid
    # the same numbers, rounded, as a reader would check them
    assert adv["a"] == pytest.approx(0.979272, abs=1e-5)
    assert adv["c1"] == pytest.approx(-0.408248, abs=1e-5)
    assert adv["a2"] == pytest.approx(-0.397938, abs=1e-5)


def test_lambda_extremes_and_uniform_rewards():
    tree = RolloutTree.from_json(TREE)
    only_branch = hierarchical_advantages(tree, lam=1.0, eps=EPS)
    assert only_branch["c1"] == 0.0 and only_branch["a1"] == pytest.approx(1.0, abs=1e-5)
    only_traj = hierarchical_advantages(tree, lam=0.0, eps=EPS)
    assert only_traj["b"] == pytest.approx(-0.4 / math.sqrt(0.24), abs=1e-5)
    flat = RolloutTree.from_json({"id": "r", "children": [{"id": "x", "reward": 1.0}, {"id": "y", "reward": 1.0}]})
    assert hierarchical_advantages(flat) == {"x": 0.0, "y": 0.0}  # no variance, no signal


def test_leaf_mean_advantages_hard_attribution():
    tree = RolloutTree.from_json(TREE)
    leaf_adv = {"a1": 1.0, "a2x": -2.0, "a2y": 4.0, "b": 0.5, "c1": -1.0}
    adv = leaf_mean_advantages(tree, leaf_adv)
    # a2 is shared by a2x and a2y: (-2 + 4)/2 = 1;  a by a1, a2x, a2y: (1 - 2 + 4)/3 = 1;  c by c1 alone
    assert adv == {"a": 1.0, "a1": 1.0, "a2": 1.0, "a2x": -2.0, "a2y": 4.0, "b": 0.5, "c": -1.0, "c1": -1.0}
    with pytest.raises(KeyError, match="a2y"):
        leaf_mean_advantages(tree, {k: v for k, v in leaf_adv.items() if k != "a2y"})


def test_elc_on_the_critical_suffix():
    # a reference failure r → s1 → s2 → s3 → s4 (leaf, sample 0) with t_crit = 2; a failed
    # continuation f (sample 1) forked after step 2, a successful one g (sample 2) after step 2
    tree = RolloutTree.from_json({"id": "r", "children": [{"id": "s1", "children": [{"id": "s2", "children": [
        {"id": "s3", "children": [{"id": "s4", "reward": 0.0, "info": {"sample": 0, "fork_step": 0, "success": False}}]},
        {"id": "f3", "children": [{"id": "f4", "reward": 0.0, "info": {"sample": 1, "fork_step": 2, "parent": 0, "success": False}}]},
        {"id": "g3", "reward": 1.0, "info": {"sample": 2, "fork_step": 2, "parent": 0, "success": True}},
    ]}]}]})
    crit = [{"leaf": "s4", "t_crit": 2}]
    # steps 2..T of the reference get 0.2 + 0.115; nothing else is named (it keeps eps_low)
    assert elc_clip_low(tree, crit, 0.2, 0.115) == pytest.approx({"s2": 0.315, "s3": 0.315, "s4": 0.315})
    # failed_branches: the failed continuation's own steps (after its fork at step 2) too, not the successful one's
    wide = elc_clip_low(tree, crit, 0.2, 0.115, scope="failed_branches")
    assert wide == pytest.approx({"s2": 0.315, "s3": 0.315, "s4": 0.315, "f3": 0.315, "f4": 0.315})
    with pytest.raises(ValueError, match="not a leaf"):
        elc_clip_low(tree, [{"leaf": "s2", "t_crit": 1}])


def test_bad_trees_are_refused():
    with pytest.raises(ValueError, match="numeric reward"):
        RolloutTree.from_json({"id": "r", "children": [{"id": "x"}]})
    with pytest.raises(ValueError, match="twice"):
        RolloutTree.from_json({"id": "r", "children": [{"id": "x", "reward": 1}, {"id": "x", "reward": 0}]})
    with pytest.raises(ValueError, match="no children"):
        RolloutTree.from_json({"id": "r", "children": []})
    with pytest.raises(ValueError, match="lam"):
        hierarchical_advantages(RolloutTree.from_json(TREE), lam=1.5)
