"""token_logprobs: aligned with the ids, equal to a plain full forward pass, and scoring only
from the first trained position gives the same values there."""

import pytest
import torch

from tirl.train.logprobs import first_scored_position, shared_prefix_len, shared_prefixes, token_logprobs


def test_matches_full_forward_and_partial_scoring(tiny):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 1000, (2, 12), generator=g)
    attn = torch.ones_like(ids)
    attn[1, 9:] = 0  # right padding
    with torch.no_grad():
        logits = tiny.model(input_ids=ids, attention_mask=attn).logits.float()
    want = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    full, ent = token_logprobs(tiny.model, ids, attn, with_entropy=True, bf16=False)
    assert full.shape == ids.shape and torch.all(full[:, 0] == 0)
    assert torch.allclose(full[:, 1:], want, atol=1e-5)
    mask = torch.zeros_like(ids, dtype=torch.float)
    mask[0, 7:] = 1
    mask[1, 5:9] = 1
    first = first_scored_position(mask)
    assert first == 5
    part, ent_part = token_logprobs(tiny.model, ids, attn, with_entropy=True, bf16=False, first=first)
    assert torch.all(part[:, :first] == 0)
    assert torch.allclose(part[:, first:], full[:, first:], atol=1e-5)
    assert torch.allclose(ent_part[:, first:], ent[:, first:], atol=1e-4)
    assert first_scored_position(torch.zeros(2, 4)) == 4


def _group(prompt_len=9, lens=(5, 8, 3), seed=1):
    """Rows that share a prompt, right-padded: ids, attention mask, trained-token mask."""
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, 1000, (prompt_len,), generator=g)
    rows = [torch.cat([prompt, torch.randint(0, 1000, (n,), generator=g)]) for n in lens]
    T = max(len(r) for r in rows)
    ids, attn, mask = torch.zeros(len(rows), T, dtype=torch.long), torch.zeros(len(rows), T, dtype=torch.long), torch.zeros(len(rows), T)
    for i, r in enumerate(rows):
        ids[i, : len(r)], attn[i, : len(r)], mask[i, prompt_len : len(r)] = r, 1, 1
    return ids, attn, mask


def test_shared_prefix_len():
    ids, attn, mask = _group()
    first = first_scored_position(mask)
    assert first == 9
    assert shared_prefix_len(ids, attn, first) == 8  # below the position that predicts the first trained token
    assert shared_prefix_len(ids[:1], attn[:1], first) == 0  # one row: nothing to share
    other = ids.clone()
    other[1, 4] += 1
    assert shared_prefix_len(other, attn, first) == 4  # rows diverge at position 4
    other[1, 1] += 1
    assert shared_prefix_len(other, attn, first) == 0  # a 1-token prefix is not worth a second forward


def test_shared_prefix_gives_the_same_logprobs_and_gradient(tiny):
    """Running the common prompt once (keys/values repeated per row) is the unshared forward:
    same log-probs, entropies and parameter gradients."""
    ids, attn, mask = _group()
    first = first_scored_position(mask)
    p = shared_prefix_len(ids, attn, first)

    def run(prefix):
        tiny.model.zero_grad()
        logp, ent = token_logprobs(tiny.model, ids, attn, with_entropy=True, bf16=False, first=first, prefix=prefix)
        (logp * mask * torch.arange(1, ids.shape[1] + 1)).sum().backward()  # position weights: a misalignment would show
        return logp.detach(), ent, torch.cat([q.grad.flatten() for q in tiny.model.parameters() if q.grad is not None])

    (lp0, ent0, g0), (lp1, ent1, g1) = run(0), run(p)
    tiny.model.zero_grad()
    assert p == 8
    assert torch.allclose(lp1 * mask, lp0 * mask, atol=1e-5)
    assert torch.allclose(ent1[:, first:] * mask[:, first:], ent0[:, first:] * mask[:, first:], atol=1e-4)
    assert g0.abs().max() > 0 and torch.allclose(g1, g0, atol=1e-5)
    try:
        token_logprobs(tiny.model, ids, attn, first=first, prefix=first)
    except ValueError as e:
        assert "shared prefix" in str(e)
    else:
        raise AssertionError("a prefix reaching the first scored position must be refused")


def _tasks():
    """Three tasks: prompts of 9 and 6 tokens shared by 3 and 2 rows, and a single row."""
    parts = [_group(9, (5, 8, 3), seed=2), _group(6, (4, 7), seed=3), _group(5, (6,), seed=4)]
    T = max(p[0].shape[1] for p in parts)
    ids, attn, mask = (torch.cat([torch.nn.functional.pad(p[k], (0, T - p[k].shape[1])) for p in parts]) for k in range(3))
    return ids, attn, mask, ["a"] * 3 + ["b"] * 2 + ["c"]


def test_shared_prefixes_per_task():
    ids, attn, mask, keys = _tasks()
    sp = shared_prefixes(ids, attn, mask, keys)
    assert sp.group_B.tolist() == [0, 0, 0, 1, 1, 2]
    assert sp.length_G.tolist() == [8, 5, 0]  # below each group's first trained token; one row shares nothing
    assert shared_prefixes(ids, attn, mask, [""] * 6) is None  # rows without a key never group


def test_several_groups_give_the_same_logprobs_and_gradient(tiny):
    """Groups with prefixes of different lengths (and a row with none) in one batch: the same
    log-probs, entropies and gradients as running every row whole."""
    ids, attn, mask, keys = _tasks()
    first = first_scored_position(mask)
    sp = shared_prefixes(ids, attn, mask, keys)

    def run(prefix):
        tiny.model.zero_grad()
        logp, ent = token_logprobs(tiny.model, ids, attn, with_entropy=True, bf16=False, first=first, prefix=prefix)
        (logp * mask * torch.arange(1, ids.shape[1] + 1)).sum().backward()
        return logp.detach(), ent, torch.cat([q.grad.flatten() for q in tiny.model.parameters() if q.grad is not None])

    (lp0, ent0, g0), (lp1, ent1, g1) = run(None), run(sp)
    tiny.model.zero_grad()
    assert torch.allclose(lp1 * mask, lp0 * mask, atol=1e-5)
    assert torch.allclose(ent1 * mask, ent0 * mask, atol=1e-4)
    assert g0.abs().max() > 0 and torch.allclose(g1, g0, atol=1e-5)


@pytest.mark.parametrize("bf16", [False, True])
def test_fused_output_layer_equals_the_models_logits(tiny, monkeypatch, bf16):
    """The fused output layer (no logits kept) against the model's own logits path: log-probs,
    entropies and gradients, with and without shared prefixes (bf16: to bf16 rounding)."""
    from tirl.train import logprobs

    ids, attn, mask, keys = _tasks()
    first = first_scored_position(mask)
    sp = shared_prefixes(ids, attn, mask, keys)

    def run(prefix):
        tiny.model.zero_grad()
        logp, ent = token_logprobs(tiny.model, ids, attn, with_entropy=True, bf16=bf16, first=first, prefix=prefix)
        (logp * mask).sum().backward()
        return logp.detach() * mask, ent * mask, torch.cat([q.grad.flatten() for q in tiny.model.parameters() if q.grad is not None])

    assert logprobs._fused_head(tiny.model) is not None  # a llama model takes the fused path
    fused = [run(None), run(sp)]
    monkeypatch.setattr(logprobs, "_fused_head", lambda model: None)
    plain = [run(None), run(sp)]
    tiny.model.zero_grad()
    tol = 2e-2 if bf16 else 1e-5
    for (lp0, e0, g0), (lp1, e1, g1) in zip(plain, fused):
        assert torch.allclose(lp1, lp0, atol=tol) and torch.allclose(e1, e0, atol=10 * tol)
        assert torch.allclose(g1, g0, atol=tol * g0.abs().max())
