"""policy_update with optim.share_prefix: a task's rows are batched together and their prompt runs
once; the step (loss, statistics, updated weights) equals the unshared one."""

import copy
from types import SimpleNamespace

import pytest
import torch

from tirl.config import load_config
from tirl.train.update import micro_batches, policy_update
from tirl.types import TrainRow


def _rows():
    g = torch.Generator().manual_seed(3)
    rows = []
    for task, n_rows in (("a", 3), ("b", 2), ("c", 1)):
        prompt = torch.randint(0, 1000, (7,), generator=g).tolist()
        for k in range(n_rows):
            n = 3 + 2 * k
            ids = prompt + torch.randint(0, 1000, (n,), generator=g).tolist()
            T = len(ids)
            mask = [0.0] * 7 + [1.0] * n
            adv = [0.0] * 7 + [float(k) - 0.7] * n
            old = [0.0] * T
            rows.append(TrainRow(ids, mask, adv, old, [0.2] * T, [0.2] * T, [0.0] * T, [0.0] * T, task_id=task, sample=k))
    return rows


def test_micro_batches_keep_tasks_together():
    rows = _rows()
    mbs = micro_batches(rows, 2, share_prefix=True)
    assert [[r.task_id for r in mb] for mb in mbs] == [["a", "a"], ["a"], ["b", "b"], ["c"]]
    assert sorted(len(r) for mb in micro_batches(rows, 2, share_prefix=False) for r in mb) == sorted(len(r) for r in rows)


def _step(tiny, rows, share):
    model = copy.deepcopy(tiny.model)
    policy = SimpleNamespace(model=model, trainable_parameters=lambda: [p for p in model.parameters() if p.requires_grad])
    opt = torch.optim.SGD(policy.trainable_parameters(), lr=0.5)
    cfg = load_config("grpo", [f"optim.share_prefix={str(share).lower()}", "optim.micro_batch_size=2", "optim.bf16=false"])
    st = policy_update(policy, opt, rows, cfg.algo, cfg.optim, 0, 1.0)
    return st, torch.cat([p.detach().flatten() for p in model.parameters()])


def test_shared_prefix_step_equals_unshared(tiny):
    rows = _rows()
    (st0, w0), (st1, w1) = _step(tiny, rows, False), _step(tiny, rows, True)
    before = torch.cat([p.detach().flatten() for p in tiny.model.parameters()])
    assert (w0 - before).abs().max() > 1e-6  # the step moved the weights
    assert torch.allclose(w1, w0, atol=1e-6)
    assert st1.n_tokens == st0.n_tokens and st1.loss == pytest.approx(st0.loss, abs=1e-6)
    assert st1.grad_norm == pytest.approx(st0.grad_norm, rel=1e-4)
    assert st1.entropy == pytest.approx(st0.entropy, rel=1e-4)
