"""The training passes' attention kernel (optim.attention): switched for the update and back
after it, and the update it produces equals the one under the model's own kernel."""

import copy
from types import SimpleNamespace

import pytest
import torch

from tirl.config import load_config
from tirl.models.attention import resolve_attention, training_attention
from tirl.train.update import policy_update
from test_update_prefix import _rows


def test_switches_inside_and_restores(tiny):
    model = copy.deepcopy(tiny.model)
    assert model.config._attn_implementation == "sdpa"
    assert resolve_attention(model, "auto") == "eager"  # a CPU model
    assert resolve_attention(model, "model") is None
    with training_attention(model, "auto"):
        assert model.config._attn_implementation == "eager"
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError):
        with training_attention(model, "eager"):
            raise RuntimeError("a failing update")
    assert model.config._attn_implementation == "sdpa"  # restored on error too


def _step(tiny, rows, attention, share):
    model = copy.deepcopy(tiny.model)
    seen = []
    model.get_decoder().register_forward_pre_hook(lambda m, a: seen.append(m.config._attn_implementation))  # runs on every path
    policy = SimpleNamespace(model=model, trainable_parameters=lambda: [p for p in model.parameters() if p.requires_grad])
    opt = torch.optim.SGD(policy.trainable_parameters(), lr=0.5)
    cfg = load_config("grpo", [f"optim.attention={attention}", f"optim.share_prefix={str(share).lower()}", "optim.micro_batch_size=2", "optim.bf16=false"])
    st = policy_update(policy, opt, rows, cfg.algo, cfg.optim, 0, 1.0)
    return st, torch.cat([p.detach().flatten() for p in model.parameters()]), set(seen)


@pytest.mark.parametrize("share", [False, True])
def test_eager_update_equals_sdpa_update(tiny, share):
    rows = _rows()
    st0, w0, seen0 = _step(tiny, rows, "model", share)
    st1, w1, seen1 = _step(tiny, rows, "auto", share)
    assert seen0 == {"sdpa"} and seen1 == {"eager"}
    before = torch.cat([p.detach().flatten() for p in tiny.model.parameters()])
    assert (w0 - before).abs().max() > 1e-6
    assert torch.allclose(w1, w0, atol=1e-5)
    assert st1.loss == pytest.approx(st0.loss, abs=1e-5) and st1.grad_norm == pytest.approx(st0.grad_norm, rel=1e-4)
