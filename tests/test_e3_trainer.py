"""E3-TIR in the trainer: credit rows by hand (hybrid advantages, the expert-guided row's
off-policy arrays, AAGD on the shared expert prefix), the update's off-policy term against a
hand-computed loss, the expert cache and its limit, and whole steps on tiny-random."""

import asyncio
import copy
import math
import random
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from tirl.config import load_config
from tirl.models.attention import training_attention
from tirl.protocol import TagProtocol
from tirl.rollout.agent_loop import prefix_trajectory
from tirl.rollout.io import read_trees
from tirl.rollout.tree import Branch, build_tree
from tirl.tasks import load_tasks
from tirl.tools import make_tool
from tirl.train.logprobs import token_logprobs
from tirl.train.rl_trainer import RLTrainer
from tirl.train.strategies import StepContext
from tirl.train.strategies.e3 import EXPERT_FILE, E3Strategy
from tirl.train.update import policy_update
from tirl.types import (
    LeafRole,
    Observation,
    Origin,
    Segment,
    Step,
    StopReason,
    ToolCall,
    TrainRow,
    Trajectory,
)

PROMPT = [1, 2, 3]
CALL = ToolCall("python", {"code": "x"})
OBS = Observation(True, "1")


def _traj(sample, segs, steps, reward):
    tr = Trajectory("t", sample, list(PROMPT), segments=segs, steps=steps, stop_reason=StopReason.ANSWER)
    tr.reward = reward
    return tr


def _e3_tree():
    """self s0 (R 0), s1 (R 1); expert e: [E 10 11][T 12][E 13 14][T 15][E 16] (R 1);
    continuations ca (R 1) and cb (R 0) from e after its first tool result, each one POLICY step."""
    S = Segment
    s0 = _traj(0, [S(Origin.POLICY, [20, 21])], [Step(0)], 0.0)
    s1 = _traj(1, [S(Origin.POLICY, [22])], [Step(0)], 1.0)
    ex = _traj(
        2,
        [S(Origin.EXPERT, [10, 11]), S(Origin.TOOL, [12]), S(Origin.EXPERT, [13, 14]), S(Origin.TOOL, [15]), S(Origin.EXPERT, [16])],
        [Step(0, CALL, OBS, 1), Step(2, CALL, OBS, 3), Step(4)],
        1.0,
    )
    conts = []
    for sample, tok, r in ((3, 30, 1.0), (4, 31, 0.0)):
        c = prefix_trajectory(ex, 1, sample=sample)
        c.segments.append(S(Origin.POLICY, [tok]))
        c.steps.append(Step(2))
        c.stop_reason, c.reward = StopReason.ANSWER, r
        conts.append(c)
    S, E, A = LeafRole.SELF, LeafRole.EXPERT, LeafRole.ANCHOR
    return build_tree(
        "t",
        [
            Branch(s0, role=S),
            Branch(s1, role=S),
            Branch(ex, role=E),
            Branch(conts[0], 2, 1, role=A, anchor_step=1),
            Branch(conts[1], 2, 1, role=A, anchor_step=1),
        ],
        strategy="e3",
    )


def _strategy(*over):
    cfg = load_config("e3_tir", ["rollout.group_size=6", "algo.adv_eps=0.0", *over])
    return E3Strategy(cfg)


def test_credit_rows_by_hand():
    # rewards s0 0, s1 1, e 1, ca 1, cb 0: A_global (mean 0.6, std 0.489898) = +0.816497 / -1.224745;
    # A_tree: self {0, 1} -> -1, +1; anchor {1, 0} -> +1, -1; e alone -> its A_global.
    # alpha 0.5: s0 = -1.112372, s1 = 0.908248, e = 0.816497, ca = 0.908248, cb = -1.112372
    rows = {r.sample: r for r in _strategy().credit([_e3_tree()]).rows}
    hi, lo, ex = 0.908248, -1.112372, 0.816497
    assert rows[0].advantage == pytest.approx([0, 0, 0, lo, lo], abs=1e-5)
    # the expert-guided row: ids prompt + 10 11 12 13 14 15 16; its expert tokens carry its advantage
    # for the off-policy term (offpolicy 1, never the PPO mask), tool tokens nothing
    e = rows[2]
    assert e.input_ids == PROMPT + [10, 11, 12, 13, 14, 15, 16]
    assert e.offpolicy == [0, 0, 0, 1, 1, 0, 1, 1, 0, 1] and not any(e.loss_mask) and not any(e.detach)
    assert e.advantage == pytest.approx([0, 0, 0, ex, ex, 0, ex, ex, 0, ex], abs=1e-5)
    # continuations: prompt + expert prefix 10 11 | 12 + own token. ca (+) and cb (-) disagree in sign,
    # so AAGD detaches their shared expert step (10 11 12); their own policy token stays trained
    ca, cb = rows[3], rows[4]
    assert ca.input_ids == PROMPT + [10, 11, 12, 30] and ca.loss_mask == [0, 0, 0, 0, 0, 0, 1]
    assert ca.detach == [0, 0, 0, 1, 1, 1, 0] and cb.detach == [0, 0, 0, 1, 1, 1, 0]
    assert ca.advantage == pytest.approx([0, 0, 0, hi, hi, 0, hi], abs=1e-5)
    assert cb.advantage == pytest.approx([0, 0, 0, lo, lo, 0, lo], abs=1e-5)
    # without AAGD the prefix copies are not detached (each would take the off-policy term with its own sign)
    rows = {r.sample: r for r in _strategy("strategy.e3.aagd=never").credit([_e3_tree()]).rows}
    assert not any(rows[3].detach) and not any(rows[4].detach)


def test_credit_without_the_expert_guided_sample_and_zero_variance():
    # without the expert sample: s0 0, s1 1, ca 1, cb 0 -> A_global +-1 (mean 0.5, std 0.5); A_tree +-1 too
    rows = {r.sample: r for r in _strategy("strategy.e3.expert_guided=false").credit([_e3_tree()]).rows}
    assert sorted(rows) == [0, 1, 3, 4]
    assert rows[1].advantage[-1] == pytest.approx(1.0) and rows[4].advantage[-1] == pytest.approx(-1.0)
    tree = _e3_tree()
    for leaf in tree.leaves():
        leaf.trajectory.reward = 1.0
    st = _strategy()
    assert st.credit([tree]).rows == []  # zero variance: dropped during the warm-up
    assert st.after_step().metrics["e3/zero_variance_dropped"] == 1.0


def test_offpolicy_term_in_the_update(tiny):
    """Rows with expert tokens only: the loss is -sum f(p_t) A_t / n over the non-detached expert
    tokens (token_mean), f(p) = p / (p + 0.1), with p from the model before the step."""
    model = copy.deepcopy(tiny.model)
    policy = SimpleNamespace(model=model, trainable_parameters=lambda: [p for p in model.parameters() if p.requires_grad])
    opt = torch.optim.SGD(policy.trainable_parameters(), lr=0.0)
    ids = [5, 6, 7, 8, 9, 10]
    z = [0.0] * 6
    adv = [0, 0, 2.0, -1.0, 0.5, 3.0]
    off = [0, 0, 1, 1, 1, 1]
    det = [0, 0, 0, 0, 0, 1]  # the last expert token is detached: out of the term and the count
    row = TrainRow(ids, list(z), adv, list(z), [0.2] * 6, [0.2] * 6, off, det)
    cfg = load_config("e3_tir", [])
    with torch.no_grad(), training_attention(model, cfg.optim.attention):  # the kernel the update uses
        logp, _ = token_logprobs(model, torch.tensor([ids]), torch.ones(1, 6, dtype=torch.long))
    p = logp[0].exp()
    want = -sum(p[t] / (p[t] + 0.1) * adv[t] for t in (2, 3, 4)) / 3
    st = policy_update(policy, opt, [row], cfg.algo, cfg.optim, 0, 1.0)
    assert st.n_offpolicy_tokens == 3 and st.n_tokens == 0
    assert st.loss == pytest.approx(float(want), rel=1e-4)
    assert st.offpolicy_weight == pytest.approx(float(sum(p[t] / (p[t] + 0.1) for t in (2, 3, 4)) / 3), rel=1e-4)
    # a recipe without the term: expert tokens train nothing
    st0 = policy_update(policy, opt, [row], cfg.algo.model_copy(update={"offpolicy_coef": 0.0}), cfg.optim, 0, 1.0)
    assert st0.n_offpolicy_tokens == 0 and st0.loss == 0.0


def test_expert_cache_limit_and_resume(tiny, tmp_path):
    tool = make_tool("python", workers=1, timeout_s=10.0)
    proto = TagProtocol([tool])
    engine = SimpleNamespace(tokenizer=tiny.tokenizer)
    tasks = load_tasks("arith", n=3, seed=0, split="train", difficulty=1)
    st = _strategy("strategy.e3.max_expert_samples=2")
    totals = Counter()

    def ctx(step):  # what the trainer hands a strategy at a step
        return StepContext(engine, proto, st.cfg.rollout, random.Random(0), step=step, expert_samples=totals["expert_samples"], run_dir=tmp_path)

    try:
        got = asyncio.run(st.experts_for(tasks, ctx(0)))
        assert [got[t.id] is not None for t in tasks] == [True, True, False]  # the limit: 2 expert samples
        costs = st.after_step().costs
        assert costs["expert_samples"] == 2 and costs["expert_tokens"] > 0
        totals.update(costs)
        # obtained once per task: asking again costs nothing
        asyncio.run(st.experts_for(tasks[:2], ctx(1)))
        assert st.after_step().costs == {}
        # a resumed run reads its expert set back from the run directory
        assert len((tmp_path / EXPERT_FILE).read_text().splitlines()) == 2
        again = _strategy("strategy.e3.max_expert_samples=2")
        back = asyncio.run(again.experts_for(tasks, ctx(3)))
        assert back[tasks[0].id].token_ids == got[tasks[0].id].token_ids and back[tasks[2].id] is None
        assert again.after_step().costs == {}
    finally:
        asyncio.run(tool.aclose())


SMALL = [
    "model.name=tiny-random",
    "train.tasks_per_step=2",
    "train.checkpoint_every=0",
    "task.difficulty=1",
    "rollout.max_response_tokens=140",
    "rollout.max_turn_tokens=16",
    "rollout.group_size=4",
    "optim.micro_batch_size=8",
    "strategy.e3.anchors=1",
    "strategy.e3.branches=2",
    "tools.sandbox_workers=1",
    "task.n_train=8",
    "task.n_eval=2",
]


def test_e3_steps_on_tiny_random(tmp_path):
    """Step 1 is a warm-up step (the random model fails, so both tasks take expert anchors), step 2
    plain GRPO. Every task costs group_size rollouts; the expert costs land in the run totals."""
    cfg = load_config("e3_tir", SMALL + ["train.steps=2", "strategy.e3.warmup_steps=1", f"run.out_dir={tmp_path}", "run.name=e3"])
    tr = RLTrainer(cfg)
    try:
        m1 = tr.train_step()
        m2 = tr.train_step()
    finally:
        tr.close()
    assert m1["e3/phase"] == 1.0 and m1["e3/share"] == 1.0 and m1["e3/tasks_with_expert"] == 1.0
    assert m1["rollout/rollouts"] == 8 and m1["tree/rollouts_per_task"] == 4  # 2 self + 2 continuations per task
    assert m1["e3/anchors_per_task"] == 1.0 and m1["tree/branches_per_task"] == 2  # level 1: one boundary
    assert m1["train/offpolicy_tokens"] > 0 and m1["train/tokens"] > 0
    assert m1["total/expert_samples"] == 2 and m1["total/expert_tokens"] > 0
    trees = read_trees(tmp_path / "e3" / "trees" / "step_0001.jsonl")
    roles = Counter(leaf.role.value for t in trees for leaf in t.leaves())
    assert roles == {"self": 4, "expert": 2, "anchor": 4}
    assert m2["e3/phase"] == 0.0 and m2["rollout/rollouts"] == 8 and "train/offpolicy_tokens" not in m2
    assert m2["total/expert_samples"] == 2 and m2["total/rollouts"] == 16
    assert math.isfinite(m2["loss/total"])


@pytest.mark.parametrize("over", [["strategy.e3.branching=false"], ["strategy.e3.aagd=never", "strategy.e3.after_warmup=arpo"]])
def test_e3_ablations_run(tmp_path, over):
    cfg = load_config("e3_tir", SMALL + ["train.steps=1", "train.tasks_per_step=1", f"run.out_dir={tmp_path}", "run.name=abl", *over])
    tr = RLTrainer(cfg)
    try:
        m = tr.train_step()
    finally:
        tr.close()
    assert m["rollout/rollouts"] == 4 and m["e3/tasks_with_expert"] == 1.0
    if "strategy.e3.branching=false" in over:
        assert m["e3/anchors_per_task"] == 0.0 and m["tree/branches_per_task"] == 0
