"""The training passes' attention kernel (optim.attention): switched for the update and back
after it, and the update it produces equals the one under the model's own kernel."""

import copy
from types import SimpleNamespace

import pytest
import torch
from test_update_prefix import _rows

from tirl.config import load_config
from tirl.models.attention import GROUPED, grouped_attention, resolve_attention, training_attention
from tirl.train.update import policy_update


def test_switches_inside_and_restores(tiny):
    model = copy.deepcopy(tiny.model)
    assert model.config._attn_implementation == "sdpa"
    assert resolve_attention(model, "auto") == GROUPED  # a Llama model on CPU
    assert resolve_attention(model, "model") is None and resolve_attention(model, "eager") == "eager"
    with training_attention(model, "auto"):
        assert model.config._attn_implementation == GROUPED
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
    cfg = load_config(
        "grpo", [f"optim.attention={attention}", f"optim.share_prefix={str(share).lower()}", "optim.micro_batch_size=2", "optim.bf16=false"]
    )
    st = policy_update(policy, opt, rows, cfg.algo, cfg.optim, 0, 1.0)
    return st, torch.cat([p.detach().flatten() for p in model.parameters()]), set(seen)


@pytest.mark.parametrize("kernel", ["eager", "grouped"])
@pytest.mark.parametrize("share", [False, True])
def test_training_kernel_update_equals_sdpa_update(tiny, share, kernel):
    rows = _rows()
    st0, w0, seen0 = _step(tiny, rows, "model", share)
    st1, w1, seen1 = _step(tiny, rows, kernel, share)
    assert seen0 == {"sdpa"} and seen1 == {GROUPED if kernel == "grouped" else "eager"}
    before = torch.cat([p.detach().flatten() for p in tiny.model.parameters()])
    assert (w0 - before).abs().max() > 1e-6
    assert torch.allclose(w1, w0, atol=1e-5)
    assert st1.loss == pytest.approx(st0.loss, abs=1e-5) and st1.grad_norm == pytest.approx(st0.grad_norm, rel=1e-4)


@pytest.mark.parametrize("n_heads,n_kv", [(6, 2), (4, 4)])
def test_grouped_attention_equals_expanded_eager_attention(n_heads, n_kv):
    """Grouped-query attention without copying key/value heads, against transformers' eager
    function (which expands them), with a causal additive mask; values and gradients."""
    from types import SimpleNamespace

    from transformers.models.llama.modeling_llama import eager_attention_forward

    g = torch.Generator().manual_seed(0)
    B, Tq, Tk, D = 2, 3, 5, 8
    q = torch.randn(B, n_heads, Tq, D, generator=g, requires_grad=True)
    k = torch.randn(B, n_kv, Tk, D, generator=g, requires_grad=True)
    v = torch.randn(B, n_kv, Tk, D, generator=g, requires_grad=True)
    allowed = torch.arange(Tk)[None, :] <= torch.arange(Tq)[:, None] + (Tk - Tq)
    mask = torch.zeros(B, 1, Tq, Tk).masked_fill(~allowed, torch.finfo(torch.float32).min)
    module = SimpleNamespace(num_key_value_groups=n_heads // n_kv, training=False)
    outs = []
    for fn in (eager_attention_forward, grouped_attention):
        o, _ = fn(module, q, k, v, mask, scaling=D**-0.5)
        grads = torch.autograd.grad((o * torch.arange(o.numel()).view_as(o)).sum(), (q, k, v))
        outs.append((o.detach(), grads))
    (o0, g0), (o1, g1) = outs
    assert o1.shape == o0.shape == (B, Tq, n_heads, D)
    assert torch.allclose(o1, o0, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g1, g0))
