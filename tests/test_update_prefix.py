"""policy_update with optim.share_prefix: a task's rows are batched together and their prompt runs
once; the step (loss, statistics, updated weights) equals the unshared one."""

import copy
from types import SimpleNamespace

import pytest
import torch

from tirl.config import load_config
from tirl.train.update import _prefix_len, micro_batches, policy_update
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
    # size 2: task a (3 rows) is split, nothing else fits beside a piece of two
    mbs = micro_batches(rows, 2, share_prefix=True)
    assert [[r.task_id for r in mb] for mb in mbs] == [["c"], ["a", "a"], ["b", "b"], ["a"]]
    # size 4: whole tasks are packed together, shortest first
    mbs = micro_batches(rows, 4, share_prefix=True)
    assert [[r.task_id for r in mb] for mb in mbs] == [["c", "b", "b"], ["a", "a", "a"]]
    assert sorted(len(r) for mb in micro_batches(rows, 2, share_prefix=False) for r in mb) == sorted(len(r) for r in rows)


def test_micro_batches_respect_the_token_budget():
    rows = _rows()  # lengths: a 10, 12, 14; b 10, 12; c 10; tasks a and b share a 7-token prompt
    # with sharing a pass runs each task's prefix once (6 tokens: below the first trained one)
    # plus rows x the longest remainder; 20 tokens: a's three rows (6 + 3 x 8) do not fit, its
    # first two (6 + 2 x 6) do, b (6 + 2 x 6) fits alone, c cannot join a or b (0 + 6 + 3 x 10)
    assert _prefix_len([r for r in rows if r.task_id == "a"]) == 6 and _prefix_len(rows[-1:]) == 0
    mbs = micro_batches(rows, 16, share_prefix=True, max_tokens=20)
    assert [[(r.task_id, len(r)) for r in mb] for mb in mbs] == [[("c", 10)], [("a", 10), ("a", 12)], [("b", 10), ("b", 12)], [("a", 14)]]
    # a budget the whole batch fits in (12 + 6 x 10 = 72): one pass
    assert len(micro_batches(rows, 16, share_prefix=True, max_tokens=72)) == 1
    # without sharing: rows x the longest row
    mbs = micro_batches(rows, 16, share_prefix=False, max_tokens=24)
    assert [[len(r) for r in mb] for mb in mbs] == [[10, 10], [10, 12], [12], [14]]
    for share in (False, True):  # every row exactly once; a row over the budget goes alone
        mbs = micro_batches(rows, 16, share, max_tokens=11)
        assert sorted(id(r) for mb in mbs for r in mb) == sorted(id(r) for r in rows)
        assert all(len(mb) == 1 for mb in mbs if max(len(r) for r in mb) > 11)


def _step(tiny, rows, share, micro_batch_size=2):
    model = copy.deepcopy(tiny.model)
    policy = SimpleNamespace(model=model, trainable_parameters=lambda: [p for p in model.parameters() if p.requires_grad])
    opt = torch.optim.SGD(policy.trainable_parameters(), lr=0.5)
    cfg = load_config("grpo", [f"optim.share_prefix={str(share).lower()}", f"optim.micro_batch_size={micro_batch_size}", "optim.bf16=false"])
    st = policy_update(policy, opt, rows, cfg.algo, cfg.optim, 0, 1.0)
    return st, torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("micro_batch_size", [2, 6])
def test_shared_prefix_step_equals_unshared(tiny, micro_batch_size):
    """Also with several tasks' prompts (of different lengths) in one micro-batch."""
    rows = _rows()
    rows[3].input_ids[:2] = [5, 5]  # task b's prompt: 5 tokens shared, not 7, so the groups' prefixes differ
    rows[4].input_ids[:2] = [6, 6]
    (st0, w0), (st1, w1) = _step(tiny, rows, False, micro_batch_size), _step(tiny, rows, True, micro_batch_size)
    before = torch.cat([p.detach().flatten() for p in tiny.model.parameters()])
    assert (w0 - before).abs().max() > 1e-6  # the step moved the weights
    assert torch.allclose(w1, w0, atol=1e-6)
    assert st1.n_tokens == st0.n_tokens and st1.loss == pytest.approx(st0.loss, abs=1e-6)
    assert st1.grad_norm == pytest.approx(st0.grad_norm, rel=1e-4)
    assert st1.entropy == pytest.approx(st0.entropy, rel=1e-4)


def test_a_non_finite_update_is_not_taken(tiny):
    """A NaN in the weights makes the loss NaN: the step raises and leaves every weight as it was."""
    from tirl.train.update import NonFiniteUpdate

    model = copy.deepcopy(tiny.model)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    policy = SimpleNamespace(model=model, trainable_parameters=lambda: [p for p in model.parameters() if p.requires_grad])
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = load_config("grpo", ["optim.bf16=false"])
    with pytest.raises(NonFiniteUpdate, match="weights were not updated"):
        policy_update(policy, opt, _rows(), cfg.algo, cfg.optim, 0, 1.0)
    assert all(torch.equal(a.nan_to_num(), b.detach().nan_to_num()) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())
