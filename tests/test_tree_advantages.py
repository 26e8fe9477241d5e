"""Tree credit on hand-built trees, with every expected number computed by hand below:
ELPO's hierarchical advantage (arXiv 2602.09598 Eq. 6-10), ARPO's hard attribution, ELC bounds."""

import math

import pytest

from tirl.algo.tree_advantages import elc_clip_low, hierarchical_advantages, leaf_mean_advantages
from tirl.rollout.io import tree_from_json
from tirl.types import CriticalStep, RolloutTree

EPS = 1e-6

# root r
#  ├─ a
#  │   ├─ a1 (R=1)
#  │   └─ a2
#  │       ├─ a2x (R=0)
#  │       └─ a2y (R=1)
#  ├─ b (R=0)
#  └─ c
#      └─ c1 (R=0)        c1 is an only child: it carries c's branch advantage
TREE = {
    "id": "r",
    "children": [
        {
            "id": "a",
            "children": [
                {"id": "a1", "reward": 1.0},
                {"id": "a2", "children": [{"id": "a2x", "reward": 0.0}, {"id": "a2y", "reward": 1.0}]},
            ],
        },
        {"id": "b", "reward": 0.0},
        {"id": "c", "children": [{"id": "c1", "reward": 0.0}]},
    ],
}


def test_hierarchical_advantages_by_hand():
    adv = hierarchical_advantages(tree_from_json(TREE), lam=0.5, eps=EPS)
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
    #   c1 is an only child and carries its parent's A_b (App. B, Fig. 4)
    ab["c1"] = ab["c"]
    # Eq. 8, trajectory advantage over the 5 leaves (1, 0, 1, 0, 0): mean 0.4, var = (2·0.6² + 3·0.4²)/5 = 0.24
    s_t = math.sqrt(0.24)
    win, lose = 0.6 / (s_t + EPS), -0.4 / (s_t + EPS)  # ≈ 1.2247, -0.8165
    # Eq. 9, a node's A_t is the mean over the leaves below it
    at = {"a1": win, "a2x": lose, "a2y": win, "b": lose, "c1": lose, "c": lose, "a2": (lose + win) / 2, "a": (win + lose + win) / 3}
    # Eq. 10 with lambda = 0.5
    for nid in adv:
        assert adv[nid] == pytest.approx(0.5 * ab[nid] + 0.5 * at[nid], abs=1e-9), nid
    # the same numbers, rounded, as a reader would check them
    assert adv["a"] == pytest.approx(0.979272, abs=1e-5)
    assert adv["c1"] == pytest.approx(-0.761802, abs=1e-5)  # -0.707107/2 - 0.816497/2
    assert adv["a2"] == pytest.approx(-0.397938, abs=1e-5)


def test_lambda_extremes_and_uniform_rewards():
    tree = tree_from_json(TREE)
    only_branch = hierarchical_advantages(tree, lam=1.0, eps=EPS)
    assert only_branch["c1"] == pytest.approx(-0.25 / math.sqrt(0.125), abs=1e-5) and only_branch["a1"] == pytest.approx(1.0, abs=1e-5)
    only_traj = hierarchical_advantages(tree, lam=0.0, eps=EPS)
    assert only_traj["b"] == pytest.approx(-0.4 / math.sqrt(0.24), abs=1e-5)
    flat = tree_from_json({"id": "r", "children": [{"id": "x", "reward": 1.0}, {"id": "y", "reward": 1.0}]})
    assert hierarchical_advantages(flat) == {"x": 0.0, "y": 0.0}  # no variance, no signal


def test_leaf_mean_advantages_hard_attribution():
    tree = tree_from_json(TREE)
    leaf_adv = {"a1": 1.0, "a2x": -2.0, "a2y": 4.0, "b": 0.5, "c1": -1.0}
    adv = leaf_mean_advantages(tree, leaf_adv)
    # a2 is shared by a2x and a2y: (-2 + 4)/2 = 1;  a by a1, a2x, a2y: (1 - 2 + 4)/3 = 1;  c by c1 alone
    assert adv == {"a": 1.0, "a1": 1.0, "a2": 1.0, "a2x": -2.0, "a2y": 4.0, "b": 0.5, "c": -1.0, "c1": -1.0}
    with pytest.raises(KeyError, match="a2y"):
        leaf_mean_advantages(tree, {k: v for k, v in leaf_adv.items() if k != "a2y"})


def test_elc_on_the_critical_suffix():
    # a reference failure r → s1 → s2 → s3 → s4 (leaf, sample 0) with t_crit = 2; a failed
    # continuation f (sample 1) forked after step 2, a successful one g (sample 2) after step 2
    tree = tree_from_json(
        {
            "id": "r",
            "children": [
                {
                    "id": "s1",
                    "children": [
                        {
                            "id": "s2",
                            "children": [
                                {"id": "s3", "children": [{"id": "s4", "reward": 0.0, "info": {"sample": 0, "fork_step": 0, "success": False}}]},
                                {
                                    "id": "f3",
                                    "children": [{"id": "f4", "reward": 0.0, "info": {"sample": 1, "fork_step": 2, "parent": 0, "success": False}}],
                                },
                                {"id": "g3", "reward": 1.0, "info": {"sample": 2, "fork_step": 2, "parent": 0, "success": True}},
                            ],
                        }
                    ],
                }
            ],
        }
    )
    tree.critical = [CriticalStep(leaf="s4", t_crit=2)]
    # steps 2..T of the reference get 0.2 + 0.115; nothing else is named (it keeps eps_low)
    assert elc_clip_low(tree, 0.2, 0.115) == pytest.approx({"s2": 0.315, "s3": 0.315, "s4": 0.315})
    # failed_branches: the failed continuation's own steps (after its fork at step 2) too, not the successful one's
    wide = elc_clip_low(tree, 0.2, 0.115, scope="failed_branches")
    assert wide == pytest.approx({"s2": 0.315, "s3": 0.315, "s4": 0.315, "f3": 0.315, "f4": 0.315})
    tree.critical = [CriticalStep(leaf="s2", t_crit=1)]
    with pytest.raises(ValueError, match="not a leaf"):
        elc_clip_low(tree)


def test_bad_trees_are_refused():
    with pytest.raises(ValueError, match="numeric reward"):
        tree_from_json({"id": "r", "children": [{"id": "x"}]})
    with pytest.raises(ValueError, match="twice"):
        tree_from_json({"id": "r", "children": [{"id": "x", "reward": 1}, {"id": "x", "reward": 0}]})
    with pytest.raises(ValueError, match="no children"):
        tree_from_json({"id": "r", "children": []})
    with pytest.raises(ValueError, match="lam"):
        hierarchical_advantages(tree_from_json(TREE), lam=1.5)


def _chain(prefix: str, steps: int, reward: float) -> dict:
    """A path of ``steps`` nodes ``prefix.s1 -> ... -> prefix.sK``, the last a leaf with ``reward``."""
    node: dict = {"id": f"{prefix}.s{steps}", "reward": reward}
    for k in range(steps - 1, 0, -1):
        node = {"id": f"{prefix}.s{k}", "children": [node]}
    return node


def _fig4_tree() -> RolloutTree:
    """The ELPO paper's worked tree (arXiv 2602.09598, App. B, Fig. 4) as tirl models it:
    16 leaves, 2 successes (R = +1.0) and 14 failures (R = -1.1), nine children of the root.
    Eight root children are failed subtrees; one, ``x``, is the reference failure whose binary
    search found two successful continuations after its step 1 (leaves 9 and 10). Node
    ``L<i>.s<k>`` is step k of leaf i; a node shared by several leaves is named after the first.
    The topology is rebuilt from the leaf count, the rewards and the printed values checked in
    ``test_elpo_worked_example_app_b``."""
    F, S = -1.1, 1.0
    kids = [
        _chain("L1", 2, F),  # leaf 1
        {
            "id": "L2.s1",
            "children": [{"id": "L2.s2", "children": [{"id": "L2.s3", "reward": F}]}, {"id": "L3.s2", "reward": F}],
        },  # leaves 2, 3: equal siblings
        {"id": "L4.s1", "children": [{"id": "L4.s2", "children": [{"id": "L4.s3", "reward": F}, {"id": "L5.s3", "reward": F}]}]},  # leaves 4, 5
        _chain("L6", 3, F),  # leaf 6
        _chain("L7", 3, F),  # leaf 7
        {
            "id": "L8.s1",
            "children": [  # the reference failure x
                {"id": "L8.s2", "children": [{"id": "L8.s3", "children": [{"id": "L8.s4", "reward": F}]}]},
                {"id": "L9.s2", "children": [{"id": "L9.s3", "reward": S}]},  # leaf 9: success
                {"id": "L10.s2", "reward": S},  # leaf 10: success
            ],
        },
        {
            "id": "L11.s1",
            "children": [
                {"id": "L11.s2", "reward": F},
                {
                    "id": "L12.s2",
                    "children": [
                        {"id": "L12.s3", "reward": F},
                        {"id": "L13.s3", "children": [{"id": "L13.s4", "reward": F}, {"id": "L14.s4", "reward": F}]},
                    ],
                },
            ],
        },  # 11-14
        _chain("L15", 3, F),  # leaf 15
        _chain("L16", 1, F),  # leaf 16
    ]
    return tree_from_json({"id": "root", "children": kids})


def test_elpo_worked_example_app_b():
    """Every value of the paper's Fig. 4 that names an A and a branch advantage, to 3 decimals.
    Only children carry their parent's branch advantage: leaf 1 step 2, leaves 6 and 7 steps 2-3,
    leaf 15 step 3 (A = -0.366, branch = -0.354) and leaf 9 step 3 (A = 1.676, branch = 0.707)."""
    tree = _fig4_tree()
    assert sum(1 for n in _walk(tree.root) if not n.children) == 16
    adv = hierarchical_advantages(tree, lam=0.5, eps=EPS)
    branch = hierarchical_advantages(tree, lam=1.0, eps=EPS)
    traj = hierarchical_advantages(tree, lam=0.0, eps=EPS)
    # Eq. 8 by hand: 16 leaves, mean = (2 - 15.4)/16 = -0.8375, population var = (2·1.8375² + 14·0.2625²)/16
    std = math.sqrt((2 * 1.8375**2 + 14 * 0.2625**2) / 16)
    assert traj["L1.s2"] == pytest.approx(-0.2625 / std, abs=1e-5)  # -0.378 (a failure's A_t)
    assert traj["L9.s3"] == pytest.approx(1.8375 / std, abs=1e-5)  # 2.646 (a success's A_t)

    printed = {  # node: (A, branch) as printed in Fig. 4
        "L1.s2": (-0.366, -0.354),
        "L6.s2": (-0.366, -0.354),
        "L6.s3": (-0.366, -0.354),
        "L7.s2": (-0.366, -0.354),
        "L7.s3": (-0.366, -0.354),
        "L15.s3": (-0.366, -0.354),
        "L9.s3": (1.676, 0.707),
    }
    for nid, (a, b) in printed.items():
        assert round(adv[nid], 3) == a, nid
        assert round(branch[nid], 3) == b, nid
    # "branch = 0.000" only below forks whose siblings have equal rewards, and below such nodes
    for nid in ("L2.s2", "L2.s3", "L3.s2", "L4.s3", "L5.s3", "L13.s4", "L14.s4", "L12.s3", "L13.s3"):
        assert round(branch[nid], 3) == 0.0, nid
    # the nine root children: eight failed subtrees (r = -1.1) and x (r = mean(-1.1, 1, 1) = 0.3):
    # A_b = -1/sqrt(8) for each failure, +sqrt(8) for x
    assert branch["L1.s1"] == pytest.approx(-1 / math.sqrt(8), abs=1e-5)
    assert branch["L8.s1"] == pytest.approx(math.sqrt(8), abs=1e-5)
    # every branch value is its own sibling-set z-score or its parent's: no only child sits at 0
    # unless its parent does
    for n in _walk(tree.root):
        if n.parent is not None and n.parent.parent is not None and len(n.parent.children) == 1:
            assert branch[n.id] == branch[n.parent.id], n.id


def _walk(node):
    yield node
    for c in node.children:
        yield from _walk(c)


def test_only_child_minimal_case():
    """root -> {n1: leaf R = -1.1, n2 -> n3: leaf R = -0.49}, lambda 0.5: n2 and n1 are siblings
    (A_b = +1, -1); n3 is n2's only child and carries +1; A_t(n3) = (-0.49 + 0.795)/0.305 = 1,
    so A(n3) = 0.5·1 + 0.5·1 = 1.0 (an only child at A_b = 0 would give 0.5)."""
    tree = tree_from_json({"id": "r", "children": [{"id": "n1", "reward": -1.1}, {"id": "n2", "children": [{"id": "n3", "reward": -0.49}]}]})
    adv = hierarchical_advantages(tree, lam=0.5, eps=0.0)
    assert adv["n3"] == pytest.approx(1.0, abs=1e-9)
    assert adv["n2"] == pytest.approx(1.0, abs=1e-9)
    assert adv["n1"] == pytest.approx(-1.0, abs=1e-9)
    # an only child of the root has no sibling set and no parent branch: A_b = 0
    lone = tree_from_json({"id": "r", "children": [{"id": "a", "children": [{"id": "b", "reward": 1.0}, {"id": "c", "reward": 0.0}]}]})
    assert hierarchical_advantages(lone, lam=1.0)["a"] == 0.0
