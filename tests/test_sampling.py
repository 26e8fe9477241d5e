"""Sampling filters against hand-computed distributions."""

import math

import torch

from tirl.engine.sampling import filtered_logprobs, inverse_cdf, sample_tokens


def _row(vals):
    return torch.tensor([vals], dtype=torch.float32)


def test_temperature_scales_logits():
    # logits [0, ln 2, ln 4] at T=1 -> probs [1/7, 2/7, 4/7]; at T=2 -> [1, sqrt2, 2]/(3+sqrt2)
    logits = _row([0.0, math.log(2), math.log(4)])
    lp = filtered_logprobs(logits, torch.tensor([1.0]), torch.tensor([0]), torch.tensor([1.0]))
    assert torch.allclose(lp.exp(), torch.tensor([[1 / 7, 2 / 7, 4 / 7]]), atol=1e-6)
    lp2 = filtered_logprobs(logits, torch.tensor([2.0]), torch.tensor([0]), torch.tensor([1.0]))
    z = 1 + math.sqrt(2) + 2
    assert torch.allclose(lp2.exp(), torch.tensor([[1 / z, math.sqrt(2) / z, 2 / z]]), atol=1e-6)


def test_top_k_and_top_p():
    logits = _row([0.0, math.log(2), math.log(4), math.log(1)])  # probs 1/8, 2/8, 4/8, 1/8
    lp = filtered_logprobs(logits, torch.tensor([1.0]), torch.tensor([2]), torch.tensor([1.0]))
    assert torch.allclose(lp.exp(), torch.tensor([[0, 1 / 3, 2 / 3, 0]]), atol=1e-6)
    # top_p 0.7: 4/8 alone is < 0.7, add 2/8 -> 0.75 >= 0.7, stop
    lp = filtered_logprobs(logits, torch.tensor([1.0]), torch.tensor([0]), torch.tensor([0.7]))
    assert torch.allclose(lp.exp(), torch.tensor([[0, 1 / 3, 2 / 3, 0]]), atol=1e-6)
    # top_p 0.5 keeps only the top token (its mass already reaches 0.5)
    lp = filtered_logprobs(logits, torch.tensor([1.0]), torch.tensor([0]), torch.tensor([0.5]))
    assert torch.allclose(lp.exp(), torch.tensor([[0, 0, 1.0, 0]]), atol=1e-6)


def test_per_row_parameters_and_entropy():
    logits = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    s = sample_tokens(logits, torch.tensor([1.0, 0.0]), torch.tensor([0, 0]), torch.tensor([1.0, 1.0]), torch.Generator().manual_seed(0))
    assert torch.allclose(s.entropy_B, torch.tensor([math.log(2), math.log(2)]))
    assert torch.allclose(s.logprob_B, torch.tensor([math.log(0.5), math.log(0.5)]))
    # a filtered-out token is never sampled and contributes no entropy
    logits = torch.tensor([[5.0, 0.0, -1.0]])
    for seed in range(20):
        s = sample_tokens(logits, torch.tensor([1.0]), torch.tensor([1]), torch.tensor([1.0]), torch.Generator().manual_seed(seed))
        assert int(s.token_B[0]) == 0 and float(s.entropy_B[0]) == 0.0 and abs(float(s.logprob_B[0])) < 1e-6


def test_sampled_frequencies_follow_the_distribution():
    # 20,000 draws from [0.1, 0.2, 0.7]: each frequency within 4 standard errors
    n = 20_000
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.7]])).expand(n, 3)
    s = sample_tokens(logits, torch.ones(n), torch.zeros(n, dtype=torch.long), torch.ones(n), torch.Generator().manual_seed(1))
    freq = torch.bincount(s.token_B, minlength=3).float() / n
    p = torch.tensor([0.1, 0.2, 0.7])
    assert ((freq - p).abs() < 4 * (p * (1 - p) / n).sqrt()).all(), freq


def test_inverse_cdf_hand_computed_across_blocks():
    # probs [1/4, 1/4, 1/2] in blocks of 2 ([1/4, 1/4] | [1/2, pad]); token i owns [cdf_{i-1}, cdf_i)
    probs = torch.tensor([[0.25, 0.25, 0.5]])
    for u, tok in [(0.0, 0), (0.2, 0), (0.25, 1), (0.49, 1), (0.5, 2), (0.999, 2)]:
        assert int(inverse_cdf(probs, torch.tensor([u], dtype=torch.float64), block=2)[0]) == tok, u


def test_inverse_cdf_never_picks_a_zero_probability_token():
    # a vocabulary that is not a multiple of the block, with zero entries at block ends and at
    # the very end: u at 0 and just below 1 must land on positive entries
    probs = torch.zeros(1, 10)
    probs[0, [1, 4, 6]] = torch.tensor([0.5, 0.25, 0.25])
    for u in [0.0, 0.5 - 1e-12, 0.5, 0.75 - 1e-12, 0.75, 1 - 2**-53]:
        tok = int(inverse_cdf(probs, torch.tensor([u], dtype=torch.float64), block=4)[0])
        assert probs[0, tok] > 0, (u, tok)


def test_inverse_cdf_matches_a_single_float64_running_sum():
    # the two-level search against one cumsum over the vocabulary: the same token except where
    # u falls within float32 rounding (~1e-9) of a boundary
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(64, 5000, generator=g), dim=-1)
    cdf = probs.double().cumsum(-1)
    u = torch.rand(64 * 50, generator=g, dtype=torch.float64).view(50, 64)
    same = 0
    for u_B in u:
        ref = torch.searchsorted(cdf, u_B[:, None] * cdf[:, -1:], right=True).squeeze(-1)
        same += int((inverse_cdf(probs, u_B, block=512) == ref).sum())
    assert same >= u.numel() - 2, f"{u.numel() - same} of {u.numel()} differ"
