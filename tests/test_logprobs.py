"""token_logprobs: aligned with the ids, equal to a plain full forward pass, and scoring only
from the first trained position gives the same values there."""

import torch

from tirl.train.logprobs import first_scored_position, token_logprobs


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
