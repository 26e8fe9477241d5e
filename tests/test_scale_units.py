"""The pieces of scale-out that need no second process: the truncated behaviour weight and its
effect on the update, the token-balanced row split, rollout slices, weight copying and the disk
weight sync, and a sharded checkpoint refused by a whole-model resume."""

import copy
import json
import math

import pytest
import torch
from dist_driver import rows as batch_rows

from tirl.algo import behaviour_weight
from tirl.cluster.pool import split
from tirl.cluster.weight_sync import DiskSync, load_into, trained_parameters
from tirl.config import AlgoConfig, OptimConfig
from tirl.models import load_model
from tirl.train.checkpoint import CheckpointError, load_checkpoint
from tirl.train.parallel import shard_rows
from tirl.train.update import policy_update
from tirl.types import Task


def test_behaviour_weight_is_the_truncated_ratio():
    prox = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    behav = torch.tensor([[-1.0, -2.5, -2.0, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w, cut = behaviour_weight(prox, behav, mask, cap=2.0)
    assert w.tolist()[0] == pytest.approx([1.0, math.exp(0.5), 2.0, 1.0])  # exp(1.5) > 2 is cut; unmasked -> 1
    assert cut.tolist() == [[False, False, True, False]]
    assert not w.requires_grad
    with pytest.raises(ValueError, match=">= 1"):
        behaviour_weight(prox, behav, mask, cap=0.5)


def _sgd_update(model, rows, cap):
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    policy = type("P", (), {"model": model, "trainable_parameters": lambda self: list(model.parameters())})()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    st = policy_update(policy, opt, rows, AlgoConfig(), OptimConfig(bf16=False, grad_clip=1e9), 0, 64.0, behaviour_cap=cap)
    return st, {k: before[k] - v for k, v in model.state_dict().items()}


def test_update_weights_tokens_by_the_behaviour_ratio(tiny):
    """With one pass the ratio to the proximal policy is 1, so a token's gradient scales with its
    weight: behaviour log-probs log(4) below the trainer's are cut to the cap, 2, and the step is
    exactly twice the on-policy one; equal log-probs weigh 1 and change nothing."""
    from tirl.train.logprobs import token_logprobs
    from tirl.train.rows import collate

    rows = batch_rows(n_tasks=2, group=2)
    base = load_model("tiny-random").model.train()
    b = collate(rows, 0)
    with torch.no_grad():
        prox, _ = token_logprobs(base, b["ids_BT"], b["attn_BT"], bf16=False)
    for r, lp in zip(rows, prox):
        r.old_logprob = [float(x) for x in lp[: len(r)]]
    st1, on_policy = _sgd_update(copy.deepcopy(base), rows, None)
    stw, same = _sgd_update(copy.deepcopy(base), rows, 2.0)
    assert stw.behaviour_weight == pytest.approx(1.0, abs=1e-5) and stw.behaviour_truncated == 0.0
    assert max(float((same[k] - on_policy[k]).abs().max()) for k in same) <= 1e-6
    stale = copy.deepcopy(rows)
    for r in stale:
        r.old_logprob = [x - math.log(4) if m else x for x, m in zip(r.old_logprob, r.loss_mask)]
    st2, doubled = _sgd_update(copy.deepcopy(base), stale, 2.0)
    assert st2.behaviour_weight == pytest.approx(2.0) and st2.behaviour_truncated == 1.0
    scale = max(float(v.abs().max()) for v in on_policy.values())
    assert max(float((doubled[k] - 2 * on_policy[k]).abs().max()) for k in doubled) <= 1e-5 * scale + 1e-8


def test_shard_rows_balances_tokens_and_keeps_tasks_together():
    rows = batch_rows(n_tasks=7, group=3, seed=3)
    shards = shard_rows(rows, 3)
    assert sorted(id(r) for s in shards for r in s) == sorted(id(r) for r in rows)  # each row once
    for s in shards:
        for t in {r.task_id for r in s}:
            assert all(r.task_id != t for other in shards if other is not s for r in other)
    loads = [sum(len(r) for r in s) for s in shards]
    biggest_task = max(sum(len(r) for r in rows if r.task_id == t) for t in {r.task_id for r in rows})
    assert max(loads) - min(loads) <= biggest_task
    assert shard_rows(rows, 3) == shards  # every rank computes the same split
    few = shard_rows(rows[:3], 4)  # one task, four ranks: three ranks train nothing
    assert [len(s) for s in few] == [3, 0, 0, 0]
    for s in shards:  # a shard keeps the batch's order
        idx = [rows.index(r) for r in s]
        assert idx == sorted(idx)


def test_rollout_slices_are_contiguous_and_cover_the_tasks():
    tasks = [Task(id=str(i), prompt="p", answer="1") for i in range(7)]
    sl = split(tasks, 3)
    assert [(start, [t.id for t in ts]) for start, ts in sl] == [(0, ["0", "1", "2"]), (3, ["3", "4"]), (5, ["5", "6"])]
    assert [start for start, _ in split(tasks[:2], 4)] == [0, 1]  # empty slices left out


def test_disk_sync_round_trip_moves_the_trained_weights(tmp_path, tiny):
    a = load_model("tiny-random").model
    b = load_model("tiny-random").model
    with torch.no_grad():
        for p in a.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    sync = DiskSync(tmp_path)
    for v in (1, 2, 3):
        h = sync.publish(trained_parameters(a), v)
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == ["v000002.safetensors", "v000003.safetensors"]
    versions = {n: p._version for n, p in b.named_parameters()}
    moved = load_into(b, h.fetch())
    assert moved == sum(p.numel() * p.element_size() for p in a.parameters() if p.requires_grad)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert all(p._version > versions[n] for n, p in b.named_parameters())  # an engine watching versions sees it
    with pytest.raises(KeyError, match="not built from the trainer's config"):
        load_into(b, {"no.such.weight": torch.zeros(1)})


def test_whole_model_resume_of_a_sharded_checkpoint_is_refused(tmp_path, tiny):
    ckpt = tmp_path / "checkpoints" / "step_000001"
    (ckpt / "shards").mkdir(parents=True)
    (ckpt / "shards" / ".metadata").write_bytes(b"x")
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": 1}))
    (ckpt / "COMPLETE").write_text(json.dumps({"step": 1, "files": ["shards/.metadata", "trainer_state.json"]}))
    with pytest.raises(CheckpointError, match="FSDP shards: resume it with cluster.parallel=fsdp"):
        load_checkpoint(ckpt, model=load_model("tiny-random").model)


def test_trajectory_policy_version_round_trips():
    from tirl.rollout.io import trajectory_from_json, trajectory_to_json
    from tirl.types import Trajectory

    tr = Trajectory(task_id="t", sample=0, prompt_token_ids=[1, 2], policy_version=7)
    assert trajectory_from_json(json.loads(json.dumps(trajectory_to_json(tr)))).policy_version == 7
    assert trajectory_from_json({"task_id": "t", "prompt_token_ids": [1], "segments": []}).policy_version == 0  # older files
