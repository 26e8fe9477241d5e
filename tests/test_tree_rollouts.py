"""Tree rollouts on scripted engines: prefix continuation in the agent loop, RolloutTree building,
JSON round trip and flattening (masks, dedupe), ARPO branching and ELPO's binary search."""

import asyncio
import math
import random

import pytest
from fake_engine import ScriptedEngine

from tirl.protocol import TagProtocol
from tirl.rollout import RolloutConfig, loss_mask, rollout
from tirl.rollout.agent_loop import continue_from, prefix_trajectory
from tirl.rollout.arpo import ARPOConfig, arpo_rollout, branch_probability, segment_entropy
from tirl.rollout.elpo import ELPOConfig, bel_rollout, entropy_gap, n_continuations
from tirl.rollout.io import read_trees, tree_to_json, write_trees
from tirl.rollout.tree import Branch, build_tree, tree_metrics
from tirl.train.rows import flatten
from tirl.types import Origin, Segment, Task

TASK = Task(id="t1", prompt="What is 2+40?", answer="42", meta={"verifier": "exact"})
CALL_CALL_ANSWER = ["<python>x = 40</python>", "<python>print(x + 2)</python>", "<answer>\\boxed{42}</answer>"]


def check_exact(tr):
    assert tr.token_ids == tr.prompt_token_ids + [t for s in tr.segments for t in s.token_ids]
    mask = loss_mask(tr)
    pos = len(tr.prompt_token_ids)
    for seg in tr.segments:
        if seg.origin is not Origin.POLICY:
            assert not any(mask[pos : pos + len(seg)])
        pos += len(seg)


class EntropyEngine(ScriptedEngine):
    """A scripted engine whose per-token entropies make a turn's ARPO segment entropy
    (sum over its first <= 20 tokens / ln|V|) equal ``h_of(turn text)``."""

    def __init__(self, tokenizer, turns, h_of):
        super().__init__(tokenizer, turns)
        self.h_of = h_of
        self.log_v = math.log(len(tokenizer))

    def generate(self, requests):
        out = super().generate(requests)
        for c in out:
            n = min(20, len(c.token_ids))
            h = self.h_of(self.tokenizer.decode(c.token_ids))
            c.entropy = [h * self.log_v / n] * len(c.token_ids)
        return out


# -- the agent loop continues prefixes ----------------------------------------------------------
def test_continue_from_prefix_keeps_ids_and_restores_tool_state(tiny, echo_tool):
    proto = TagProtocol([echo_tool])
    eng = ScriptedEngine(tiny.tokenizer, CALL_CALL_ANSWER)
    full = asyncio.run(rollout(eng, proto, [TASK], RolloutConfig(group_size=1)))[0][0]
    assert len(full.steps) == 3 and full.steps[1].observation.output.endswith("#2")
    prefix = prefix_trajectory(full, 1, sample=7)
    assert prefix.token_ids == full.token_ids[: len(prefix.token_ids)] and prefix.stop_reason is None
    cont = asyncio.run(continue_from(eng, proto, [prefix], RolloutConfig()))[0]
    check_exact(cont)
    assert cont.sample == 7 and cont.answer == "42"
    assert cont.token_ids[: len(prefix.token_ids)] == full.token_ids[: len(prefix.token_ids)]
    # the first call was replayed in the continuation's new session, so its next call is that session's 2nd
    assert cont.steps[1].observation.output.endswith("#2") and cont.metrics["replayed_calls"] == 1.0
    with pytest.raises(ValueError, match="tool observation"):
        prefix_trajectory(full, 3)  # the last step is the answer: nothing to continue after it
    with pytest.raises(ValueError, match="stopped"):
        asyncio.run(continue_from(eng, proto, [full], RolloutConfig()))


# -- a RolloutTree from lineage, JSON, flatten -------------------------------------------------
def _branched(tiny, echo_tool):
    """Three trajectories: two from the prompt, one continuing the first after its first step."""
    proto = TagProtocol([echo_tool])
    eng = ScriptedEngine(tiny.tokenizer, CALL_CALL_ANSWER)
    a, b = asyncio.run(rollout(eng, proto, [TASK], RolloutConfig(group_size=2)))[0]
    c = asyncio.run(continue_from(eng, proto, [prefix_trajectory(a, 1, sample=2)], RolloutConfig()))[0]
    for tr, r in zip((a, b, c), (1.0, 0.0, 0.5)):
        tr.reward = r
    return build_tree(TASK.id, [Branch(a), Branch(b), Branch(c, parent=0, shared_steps=1)], strategy="test")


def test_tree_structure_and_json_roundtrip(tiny, echo_tool, tmp_path):
    tree = _branched(tiny, echo_tool)
    # root → a1 → {a2 → a3, c2 → c3};  root → b1 → b2 → b3
    assert [n.id for n in tree.leaves()] == ["0.0.0.0", "0.0.1.0", "0.1.0.0"]
    assert [len(n.children) for n in (tree.root, tree.node("0.0"))] == [2, 2]
    assert tree.depth == 2 and tree.max_steps == 3 and tree.rollouts == 3
    shared = tree.node("0.0")
    assert shared.call.arguments["code"].strip() == "x = 40" and shared.parent is tree.root
    assert [s.origin for s in shared.segments] == [Origin.POLICY, Origin.TOOL]
    for leaf in tree.leaves():  # a root-to-leaf path is exactly the leaf trajectory's ids
        assert [t for n in leaf.path() for t in n.tokens] == leaf.trajectory.token_ids
    c = tree.node("0.0.1.0")
    assert (c.sample, c.fork_step, c.parent_sample) == (2, 1, 0)

    write_trees(tmp_path / "trees.jsonl", [tree])
    back = read_trees(tmp_path / "trees.jsonl")[0]
    assert tree_to_json(back) == tree_to_json(tree)
    for x, y in zip(tree.leaves(), back.leaves()):
        assert x.trajectory.token_ids == y.trajectory.token_ids and loss_mask(x.trajectory) == loss_mask(y.trajectory)
        assert x.reward == y.reward and x.trajectory.answer == y.trajectory.answer
    assert [s.call.arguments for s in back.leaves()[1].trajectory.steps if s.call] == [{"code": "x = 40"}, {"code": "print(x + 2)"}]


def test_flatten_masks_advantages_clip_and_dedupe(tiny, echo_tool):
    tree = _branched(tiny, echo_tool)
    adv = {n.id: float(i + 1) for i, n in enumerate(tree.nodes()) if n is not tree.root}
    rows = flatten(tree, adv, clip_low=0.2, clip_high=0.3, clip_low_nodes={"0.0.1": 0.5})
    assert len(rows) == 3
    for row, leaf in zip(rows, tree.leaves()):
        assert row.input_ids == leaf.trajectory.token_ids and row.loss_mask == [float(m) for m in loss_mask(leaf.trajectory)]
        pos = 0
        for node in leaf.path():
            n = len(node.tokens)
            for j in range(pos, pos + n):
                # a step's policy tokens carry its node's value; prompt and tool tokens carry none
                assert row.advantage[j] == (adv[node.id] if row.loss_mask[j] else 0.0)
                assert row.clip_low[j] == (0.5 if node.id == "0.0.1" else 0.2)
            pos += n
        assert set(row.clip_high) == {0.3} and not any(row.detach)
        # tool tokens are never trainable
        tool = [j for j, seg_origin in enumerate(_origins(leaf.trajectory)) if seg_origin is Origin.TOOL]
        assert tool and not any(row.loss_mask[j] for j in tool)

    # dedupe: the shared step's tokens are trained in the first row only, detached in the other
    dd = flatten(tree, adv, dedupe_prefix=True)
    n_shared = len(tree.node("0.0").tokens)
    p = len(tree.root.tokens)
    assert not any(dd[0].detach) and all(dd[1].detach[p : p + n_shared]) and not any(dd[1].detach[p + n_shared :])
    trained = sum(sum(m * (1 - d) for m, d in zip(r.loss_mask, r.detach)) for r in dd)
    unique_policy = sum(len(s) for n in tree.nodes() for s in n.segments if s.origin is Origin.POLICY)
    assert trained == unique_policy  # every policy token of the tree trained exactly once
    # per-leaf (soft) credit: every token of a row takes its leaf's value; it cannot be deduplicated
    soft = flatten(tree, {leaf.id: 2.0 for leaf in tree.leaves()}, per_leaf=True)
    assert {a for r in soft for a, m in zip(r.advantage, r.loss_mask) if m} == {2.0}
    with pytest.raises(ValueError, match="per-node"):
        flatten(tree, {}, per_leaf=True, dedupe_prefix=True)
    with pytest.raises(KeyError, match="no advantage"):
        flatten(tree, {"0.0": 1.0})


def _origins(tr):
    return [Origin.PROMPT] * len(tr.prompt_token_ids) + [s.origin for s in tr.segments for _ in s.token_ids]


def test_lineage_errors_are_clear(tiny, echo_tool):
    proto = TagProtocol([echo_tool])
    eng = ScriptedEngine(tiny.tokenizer, CALL_CALL_ANSWER)
    a, b = asyncio.run(rollout(eng, proto, [TASK], RolloutConfig(group_size=2)))[0]
    with pytest.raises(ValueError, match="earlier"):
        build_tree(TASK.id, [Branch(a, parent=1, shared_steps=1), Branch(b)])
    b.segments[0] = Segment(Origin.POLICY, b.segments[0].token_ids[:-1])
    with pytest.raises(ValueError, match="differs from its parent"):
        build_tree(TASK.id, [Branch(a), Branch(b, parent=0, shared_steps=1)])


# -- ARPO ------------------------------------------------------------------------------------
def test_arpo_entropy_and_probability_by_hand():
    lv = math.log(1000)
    seg = Segment(Origin.POLICY, list(range(30)), entropy=[0.5 * lv] * 30)
    # only the first 20 tokens count: 20 · 0.5 ln|V| / ln|V| = 10
    assert segment_entropy(seg, 20, lv) == pytest.approx(10.0)
    assert branch_probability(0.0) == 0.5 and branch_probability(1.0) == pytest.approx(0.7)
    assert branch_probability(5.0) == 1.0 and branch_probability(-3.0) == 0.0
    with pytest.raises(ValueError, match="entropies"):
        segment_entropy(Segment(Origin.POLICY, [1]), 20, lv)


def _arpo(tiny, tool, turns, h_of, seed=0, **cfg):
    proto = TagProtocol([tool])
    eng = EntropyEngine(tiny.tokenizer, turns, h_of)
    return asyncio.run(arpo_rollout(eng, proto, [TASK], RolloutConfig(), ARPOConfig(**cfg), random.Random(seed)))[0]


def test_arpo_branches_where_entropy_rises(tiny, echo_tool):
    # first segment H = 0, the segment after the first tool result H = 5: with base 0 and
    # weight 0.2, P(branch) = clip(0 + 0.2·0) = 0 at the first call and clip(0.2·5) = 1 at the second
    h = lambda text: 0.0 if "x = 40" in text else 5.0  # noqa: E731
    tree = _arpo(tiny, echo_tool, CALL_CALL_ANSWER, h, budget=4, initial=2, base_prob=0.0)
    assert tree.rollouts == 4 and len(tree.leaves()) == 4 and tree.meta["branches"] == 2
    forks = [leaf for leaf in tree.leaves() if leaf.fork_step]
    assert sorted((f.parent_sample, f.fork_step) for f in forks) == [(0, 2), (1, 2)]  # after the 2nd call only
    for leaf in tree.leaves():
        check_exact(leaf.trajectory)
        assert leaf.trajectory.answer == "42"
    # the branch replayed its parent's two calls: its sessions saw them before its own
    assert echo_tool.calls and max(echo_tool.calls.values()) == 2
    assert tree.depth == 2


def test_arpo_initial_entropy_is_reset_per_call(tiny, echo_tool):
    # call 1: H = 5 everywhere (dH = 0, no branch at base 0); call 2: first segment H = 0, later 5.
    # A stale H_init = 5 carried over from call 1 would give dH = 0 in call 2 and no branches.
    first = _arpo(tiny, echo_tool, CALL_CALL_ANSWER, lambda t: 5.0, budget=4, initial=4, base_prob=0.0)
    assert first.meta["branches"] == 0
    second = _arpo(tiny, echo_tool, CALL_CALL_ANSWER, lambda t: 0.0 if "x = 40" in t else 5.0, budget=4, initial=2, base_prob=0.0)
    assert second.meta["branches"] == 2


def test_arpo_tops_up_with_fresh_samples_never_duplicates(tiny, echo_tool):
    # never branch: the 2 initial paths end, then fresh samples from the prompt fill the budget of 5
    tree = _arpo(tiny, echo_tool, CALL_CALL_ANSWER, lambda t: 0.0, budget=5, initial=2, base_prob=0.0, entropy_weight=0.0)
    leaves = tree.leaves()
    assert len(leaves) == 5 and tree.meta["topups"] == 3 and tree.meta["branches"] == 0
    assert all(leaf.fork_step == 0 for leaf in leaves) and tree.depth == 1
    trajs = [leaf.trajectory for leaf in leaves]
    assert len({id(t) for t in trajs}) == 5 and sorted(t.sample for t in trajs) == [0, 1, 2, 3, 4]
    # three rounds per trajectory: the 2 initial paths, then one top-up at a time → 3 + 3·3 = 12 rounds;
    # topping up all 3 at once → 6
    assert tree.meta["rounds"] == 12
    at_once = _arpo(tiny, echo_tool, CALL_CALL_ANSWER, lambda t: 0.0, budget=5, initial=2, base_prob=0.0, entropy_weight=0.0, topup_per_round=3)
    assert at_once.meta["rounds"] == 6 and len(at_once.leaves()) == 5


def test_arpo_budget_is_never_exceeded(tiny, echo_tool):
    tree = _arpo(tiny, echo_tool, CALL_CALL_ANSWER, lambda t: 0.0, budget=3, initial=2, base_prob=1.0)
    assert tree.rollouts == 3 and len(tree.leaves()) == 3


# -- ELPO BEL ---------------------------------------------------------------------------------
class RecoverEngine(ScriptedEngine):
    """A world where step 2 of a fresh trajectory is irrecoverable: a fresh trajectory makes calls
    ok<i>, bad, ok, ok (its first call numbered, so no two fresh trajectories share a prefix) and
    answers 7 (wrong); a continuation (a request whose prefix, longer than the prompt, an earlier
    request already had) makes 'fix' calls and answers 42 unless a 'bad' call is in its prefix."""

    def __init__(self, tokenizer, prompt_ids):
        super().__init__(tokenizer, [])
        self.prompt_ids = prompt_ids
        self.seen = set()
        self.fresh = 0

    def generate(self, requests):
        from tirl.engine.base import Completion, FinishReason

        out = []
        for r in requests:
            done = self.tokenizer.decode(r.prefix_ids[len(self.prompt_ids) :])
            key = tuple(r.prefix_ids)
            cont = (len(key) > len(self.prompt_ids) and key in self.seen) or "fix" in done
            self.seen.add(key)
            calls = done.count("</python>")
            if calls == 0:
                text = f"<python>ok{self.fresh}</python>"
                self.fresh += 1
            elif calls < 4:
                text = "<python>fix</python>" if cont else ("<python>bad</python>" if calls == 1 else "<python>ok</python>")
            else:
                text = "<answer>\\boxed{7}</answer>" if "bad" in done else "<answer>\\boxed{42}</answer>"
            stop = "</python>" if calls < 4 else "</answer>"
            ids = self._ids(text)
            out.append(Completion(ids, [-0.5] * len(ids), [1.0] * len(ids), FinishReason.STOP_STRING, stop))
        return out


def test_bel_finds_the_irrecoverable_step(tiny, echo_tool):
    proto = TagProtocol([echo_tool])
    eng = RecoverEngine(tiny.tokenizer, proto.prompt_ids(tiny.tokenizer, TASK))
    cfg = ELPOConfig(budget=10, buffer=3)
    tree = asyncio.run(bel_rollout(eng, proto, [TASK], RolloutConfig(max_tool_calls=4), cfg))[0]
    # budget 10: 3 fresh failures; reference = sample 0 (equal entropies: the first); K = 4.
    # equal entropies → X_m = round(1 + 2·sigmoid(0)) = 2 continuations per probe.
    # probe m = (1+4)//2 = 2 → samples 3, 4 continue after step 2 (has 'bad') → fail → R = 2
    # probe m = (1+2)//2 = 1 → samples 5, 6 continue after step 1 → succeed → L = 2 → t_crit = 2
    # 3 budget left: samples 7, 8, 9 fresh failures; reference 7, no budget to search: t_crit = L = 1
    assert tree.rollouts == 10 and len(tree.leaves()) == 10
    crit = tree.critical
    assert [(c.sample, c.t_crit, c.k) for c in crit] == [(0, 2, 4), (7, 1, 4)]
    info = {leaf.sample: leaf for leaf in tree.leaves()}
    assert [info[s].fork_step for s in range(10)] == [0, 0, 0, 2, 2, 1, 1, 0, 0, 0]
    assert [info[s].success for s in range(10)] == [False] * 5 + [True] * 2 + [False] * 3
    assert all(info[s].parent_sample == 0 for s in (3, 4, 5, 6))
    ref = tree.leaf_for_sample(0)
    assert crit[0].leaf == ref.id and len(ref.path()) == 6  # root + 4 calls + the answer
    for leaf in tree.leaves():
        check_exact(leaf.trajectory)
    # continuations hang under the reference's step 1 and step 2 nodes
    s1, s2 = ref.path()[1], ref.path()[2]
    assert len(s1.children) == 3 and len(s2.children) == 3 and tree.depth == 3

    for leaf in tree.leaves():
        leaf.trajectory.reward = 1.0 if leaf.success else 0.0
        leaf.trajectory.rewards["correct"] = leaf.trajectory.reward
    m = tree_metrics([tree])
    assert m["tree/rollouts_per_task"] == 10 and m["tree/branch_success"] == 0.5 and m["tree/depth"] == 3
    assert m["tree/critical_step"] == 1.5 and m["tree/critical_pos"] == pytest.approx((2 / 4 + 1 / 4) / 2)


def test_bel_numbers_by_hand():
    cfg = ELPOConfig()
    # X_m = round(1 + 2·sigmoid(5·dH)): dH = 0 → 2; dH = 1 → 1 + 2·0.9933 = 2.99 → 3; dH = -1 → 1.01 → 1
    assert [n_continuations(h, 0.0, cfg) for h in (0.0, 1.0, -1.0)] == [2, 3, 1]
    from tirl.types import Step, Trajectory

    tr = Trajectory(
        "t",
        0,
        [1],
        segments=[
            Segment(Origin.POLICY, [1, 2], entropy=[1.0, 3.0]),
            Segment(Origin.TOOL, [3]),
            Segment(Origin.POLICY, [4, 5, 6], entropy=[2.0, 2.0, 5.0]),
            Segment(Origin.TOOL, [7]),
            Segment(Origin.POLICY, [8], entropy=[0.0]),
        ],
        steps=[Step(0, call=object(), tool_segment=1), Step(2, call=object(), tool_segment=3), Step(4)],
    )
    # H_root = mean(1, 3) = 2; H_tool pooled over the 4 tokens after feedback = (2+2+5+0)/4 = 2.25;
    # H_tool_1 = mean(2, 2, 5) = 3; H_tool_2 = 0
    assert entropy_gap(tr) == (2.0, 2.25, [3.0, 0.0])
    with pytest.raises(ValueError, match="x_min"):
        ELPOConfig(x_min=3, x_max=1)


def test_infrastructure_failures_leave_the_tree(tiny, echo_tool):
    proto = TagProtocol([echo_tool])
    eng = ScriptedEngine(tiny.tokenizer, CALL_CALL_ANSWER)
    a, b = asyncio.run(rollout(eng, proto, [TASK], RolloutConfig(group_size=2)))[0]
    c = asyncio.run(continue_from(eng, proto, [prefix_trajectory(a, 1, sample=2)], RolloutConfig()))[0]
    from tirl.types import StopReason

    a.stop_reason = b.stop_reason = StopReason.ERROR  # a is c's parent: their shared step stays
    tree = build_tree(TASK.id, [Branch(a), Branch(b), Branch(c, parent=0, shared_steps=1)])
    assert tree.dropped == 2 and [leaf.trajectory for leaf in tree.leaves()] == [c]
    assert len(tree.root.children) == 1 and tree.root.children[0].children[0].children[0].is_leaf
    assert [t for n in tree.leaves()[0].path() for t in n.tokens] == c.token_ids


def test_arpo_credit_soft_and_hard_by_hand(tiny, echo_tool):
    from tirl.config import load_config
    from tirl.train.strategies import ARPOStrategy

    # leaves in order: a (R=1), c (R=0.5, continues a after step 1), b (R=0)
    # GRPO: mean 0.5, population std sqrt((0.25 + 0 + 0.25)/3) = sqrt(1/6)
    s = math.sqrt(1 / 6)
    a_adv, c_adv, b_adv = 0.5 / (s + 1e-6), 0.0, -0.5 / (s + 1e-6)
    tree = _branched(tiny, echo_tool)
    soft = ARPOStrategy(load_config("arpo")).credit([tree])
    assert [sorted({x for x, m in zip(r.advantage, r.loss_mask) if m}) for r in soft.rows] == [
        [pytest.approx(a_adv)],
        [c_adv],
        [pytest.approx(b_adv)],
    ]
    # hard: the step a and c share gets their mean (a_adv + 0)/2; their own steps keep their own value
    tree = _branched(tiny, echo_tool)
    hard = ARPOStrategy(load_config("arpo", ["strategy.arpo.attribution=hard", "strategy.dedupe_prefix=true"])).credit([tree])
    shared = tree.node("0.0")
    p, n = len(tree.root.tokens), len(shared.tokens)
    row_a, row_c, row_b = hard.rows

    def trained(row, lo, hi=None):
        return sorted({round(x, 6) for x, m in zip(row.advantage[lo:hi], row.loss_mask[lo:hi]) if m})

    assert trained(row_a, p, p + n) == [round(a_adv / 2, 6)] and trained(row_a, p + n) == [round(a_adv, 6)]
    assert trained(row_c, p + n) == [0.0] and trained(row_b, p) == [round(b_adv, 6)]
    assert all(row_c.detach[p : p + n]) and not any(row_a.detach)  # the shared step is trained once, in a's row
    assert shared.advantage == pytest.approx(a_adv / 2, abs=1e-5)
