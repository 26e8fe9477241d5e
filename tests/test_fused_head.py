"""The fused output layer against log_softmax(linear(h)) and autograd, in chunks, with bias."""

import pytest
import torch

from tirl.train.fused_head import head_logprobs


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("bf16", [False, True])
def test_matches_log_softmax_of_the_linear_layer(bias, bf16):
    g = torch.Generator().manual_seed(0)
    N, H, V = 37, 16, 101
    head = torch.nn.Linear(H, V, bias=bias)
    with torch.no_grad():
        head.weight.copy_(torch.randn(V, H, generator=g))
        if bias:
            head.bias.copy_(torch.randn(V, generator=g))
    h = torch.randn(N, H, generator=g, requires_grad=True)
    target = torch.randint(0, V, (N,), generator=g)
    w_N = torch.randn(N, generator=g)

    lp, ent = head_logprobs(h, head, target, bf16, with_entropy=True, chunk=10)  # 4 chunks, the last partial
    (lp * w_N).sum().backward()
    got = [h.grad.clone(), head.weight.grad.clone()] + ([head.bias.grad.clone()] if bias else [])
    h.grad = None
    head.zero_grad()

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = head(h)
    logp_all = torch.log_softmax(logits.float(), -1)
    lp_ref = logp_all.gather(-1, target[:, None]).squeeze(-1)
    ent_ref = -(logp_all.exp() * logp_all).sum(-1)
    (lp_ref * w_N).sum().backward()
    want = [h.grad, head.weight.grad] + ([head.bias.grad] if bias else [])

    assert torch.allclose(lp, lp_ref, atol=1e-5) and torch.allclose(ent, ent_ref, atol=1e-4)  # lse - sum p x: fp32 cancellation
    assert not ent.requires_grad
    for a, b in zip(got, want):  # bf16: the reference rounds the whole weight gradient to bf16 at once
        assert torch.allclose(a, b, atol=(2e-2 if bf16 else 1e-5) * b.abs().max())


def test_frozen_head_gets_no_gradient():
    head = torch.nn.Linear(8, 11).requires_grad_(False)
    h = torch.randn(5, 8, requires_grad=True)
    lp, ent = head_logprobs(h, head, torch.randint(0, 11, (5,)), bf16=False)
    lp.sum().backward()
    assert ent is None and h.grad is not None and head.weight.grad is None
