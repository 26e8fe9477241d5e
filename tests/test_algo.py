"""Advantages, policy losses, aggregation, KL and filters against hand-computed values and a
slow per-token reference loop."""

import math

import pytest
import torch

from tirl.algo import (
    ADVANTAGES,
    AGGREGATIONS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    AdvantageConfig,
    BatchCounts,
    LossConfig,
    LossInput,
    nonzero_variance_groups,
)
from tirl.rewards.overlong import overlong_penalty

R = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0])
G = torch.tensor([0, 0, 0, 0, 7, 7])


def test_grpo_hand_computed():
    # group 0: mean 0.5, population std 0.5 -> +-1/(0.5+eps); group 7: constant -> 0
    a = ADVANTAGES["grpo"](R, G, AdvantageConfig(eps=1e-6))
    want = torch.tensor([0.5, -0.5, -0.5, 0.5, 0.0, 0.0]) / (0.5 + 1e-6)
    assert torch.allclose(a, want, atol=1e-6)
    dr = ADVANTAGES["dr_grpo"](R, G, AdvantageConfig())  # Dr. GRPO: R - mean R, eps unused
    assert torch.allclose(dr, torch.tensor([0.5, -0.5, -0.5, 0.5, 0.0, 0.0]))


def test_grpo_three_values():
    # rewards 1,2,3: mean 2, population std sqrt(2/3)
    a = ADVANTAGES["grpo"](torch.tensor([1.0, 2.0, 3.0]), torch.zeros(3, dtype=torch.long), AdvantageConfig(eps=0.0))
    s = math.sqrt(2 / 3)
    assert torch.allclose(a, torch.tensor([-1 / s, 0.0, 1 / s]), atol=1e-6)


def test_rloo_hand_computed():
    # group 0: R_i - mean of the other three: 1 - 1/3, 0 - 2/3, 0 - 2/3, 1 - 1/3
    a = ADVANTAGES["rloo"](R, G, AdvantageConfig())
    assert torch.allclose(a, torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3, 0.0, 0.0]), atol=1e-6)
    assert ADVANTAGES["rloo"](torch.tensor([5.0]), torch.tensor([0]), AdvantageConfig()).item() == 0.0


def _inp(logp, old, adv, mask=None, lo=0.2, hi=0.28):
    logp = torch.tensor([logp], requires_grad=True)
    old = torch.tensor([old])
    mask = torch.ones_like(old) if mask is None else torch.tensor([mask])
    adv = torch.tensor([adv])
    return LossInput(logp, old, adv, mask, torch.full_like(old, lo), torch.full_like(old, hi))


def test_ppo_clip_hand_computed():
    # ratios: e^0.5=1.6487 (A>0: clipped at 1.28 -> loss -1.28), e^-0.5=0.6065 (A>0: unclipped -> -0.6065),
    # e^0.5 with A<0: max(1.6487, 1.28) -> loss 1.6487 (unclipped is larger), e^-0.5 with A<0 -> clip at 0.8 -> 0.8
    x = _inp([0.5, -0.5, 0.5, -0.5], [0.0] * 4, [1.0, 1.0, -1.0, -1.0])
    out = POLICY_LOSSES["ppo_clip"](x, LossConfig())
    want = torch.tensor([[-1.28, -math.exp(-0.5), math.exp(0.5), 0.8]])
    assert torch.allclose(out.loss_BT, want, atol=1e-5)
    assert out.clipped_BT.tolist() == [[True, False, False, True]]
    # dual clip c=1.5 caps the A<0 loss at 1.5
    out = POLICY_LOSSES["ppo_clip"](x, LossConfig(dual_clip=1.5))
    assert torch.allclose(out.loss_BT, torch.tensor([[-1.28, -math.exp(-0.5), 1.5, 0.8]]), atol=1e-5)


def _reference_ppo(logp, old, adv, lo, hi):
    """Slow per-token reference loop."""
    out = []
    for lp, o, a, low, h in zip(logp, old, adv, lo, hi):
        r = math.exp(lp - o)
        out.append(-min(r * a, min(max(r, 1 - low), 1 + h) * a))
    return out


def test_ppo_clip_matches_reference_loop_and_per_token_bounds():
    g = torch.Generator().manual_seed(0)
    logp = torch.randn(3, 7, generator=g) * 0.3
    old = torch.randn(3, 7, generator=g) * 0.3
    adv = torch.randn(3, 7, generator=g)
    lo = torch.rand(3, 7, generator=g) * 0.4
    hi = torch.rand(3, 7, generator=g) * 0.4
    out = POLICY_LOSSES["ppo_clip"](LossInput(logp, old, adv, torch.ones(3, 7), lo, hi), LossConfig())
    for b in range(3):
        ref = _reference_ppo(logp[b].tolist(), old[b].tolist(), adv[b].tolist(), lo[b].tolist(), hi[b].tolist())
        assert torch.allclose(out.loss_BT[b], torch.tensor(ref), atol=1e-5)


def test_ppo_gradient_is_ratio_times_advantage_when_unclipped():
    x = _inp([0.1, 0.0], [0.0, 0.0], [2.0, -1.0])
    out = POLICY_LOSSES["ppo_clip"](x, LossConfig())
    out.loss_BT.sum().backward()
    assert torch.allclose(x.logp_BT.grad, torch.tensor([[-2.0 * math.exp(0.1), 1.0]]), atol=1e-5)


def test_gspo_sequence_ratio():
    # one sequence, 3 tokens, mask [1,1,0]: s = exp((0.2 + 0.1)/2) = exp(0.15) for every token
    x = _inp([0.2, 0.1, 5.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], mask=[1.0, 1.0, 0.0], lo=3e-4, hi=4e-4)
    out = POLICY_LOSSES["gspo"](x, LossConfig())
    assert torch.allclose(out.ratio_BT, torch.full((1, 3), math.exp(0.15)), atol=1e-6)
    # s > 1 + 4e-4 with A > 0: clipped, so no gradient flows
    assert torch.allclose(out.loss_BT, torch.full((1, 3), -(1 + 4e-4)), atol=1e-6)
    # unclipped case: gradient of token t is -A * s (token-wise form, GSPO eq. 7)
    x = _inp([1e-5, -1e-5], [0.0, 0.0], [1.0, 1.0], lo=3e-4, hi=4e-4)
    out = POLICY_LOSSES["gspo"](x, LossConfig())
    out.loss_BT.sum().backward()
    assert torch.allclose(x.logp_BT.grad, torch.tensor([[-1.0, -1.0]]), atol=1e-5)


def test_aggregations_hand_computed():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    c = BatchCounts(n_tokens=3, n_seqs=2, norm_constant=10)
    assert AGGREGATIONS["token_mean"](loss, mask, c).item() == pytest.approx((1 + 2 + 4) / 3)
    assert AGGREGATIONS["seq_mean_token_mean"](loss, mask, c).item() == pytest.approx((1.5 + 4) / 2)
    assert AGGREGATIONS["seq_sum_norm"](loss, mask, c).item() == pytest.approx(7 / 20)
    # micro-batches with global counts add up to the full-batch value
    c_full = BatchCounts(n_tokens=3, n_seqs=2)
    split = sum(AGGREGATIONS["seq_mean_token_mean"](loss[i : i + 1], mask[i : i + 1], c_full) for i in range(2))
    assert split.item() == pytest.approx(AGGREGATIONS["seq_mean_token_mean"](loss, mask, c_full).item())


def test_kl_estimators():
    logp = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-1.5, -1.0])
    assert torch.allclose(KL_ESTIMATORS["k1"](logp, ref), torch.tensor([0.5, -1.0]))
    assert torch.allclose(KL_ESTIMATORS["k2"](logp, ref), torch.tensor([0.125, 0.5]))
    d = torch.tensor([-0.5, 1.0])
    assert torch.allclose(KL_ESTIMATORS["k3"](logp, ref), torch.exp(d) - d - 1)
    assert (KL_ESTIMATORS["k3"](logp, ref) >= 0).all()


def test_dynamic_sampling_filter():
    keep = nonzero_variance_groups(R, G)
    assert keep.tolist() == [True, True, True, True, False, False]


def test_overlong_penalty():
    # Lmax 100, buffer 20: <= 80 -> 0; 90 -> -0.5; 100 -> -1; 101 -> -1
    assert [overlong_penalty(n, 100, 20) for n in (50, 80, 90, 100, 101)] == [0.0, 0.0, -0.5, -1.0, -1.0]
    with pytest.raises(ValueError):
        overlong_penalty(1, 10, 0)
