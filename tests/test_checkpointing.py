"""Activation checkpointing (tirl.models.checkpointing): the same log-probs and gradients as the
plain pass, with and without a shared prompt, in fp32 and bf16; far fewer bytes kept for the
backward pass; a cache that gives the same answer when a layer runs twice; the model restored."""

import pytest
import torch
from test_logprobs import _tasks

from tirl.models.attention import training_attention
from tirl.models.checkpointing import ReplayableCache, checkpointed_layers, decoder_layers
from tirl.train.logprobs import first_scored_position, shared_prefixes, token_logprobs


def _run(model, ids, attn, mask, prefix, bf16, checkpointed):
    model.zero_grad()
    model.train()
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    # the backward pass inside the block, as in the update: the recomputation must see the same attention kernel
    with training_attention(model, "grouped"), checkpointed_layers(model, checkpointed):
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logp, ent = token_logprobs(model, ids, attn, with_entropy=True, bf16=bf16, first=first_scored_position(mask), prefix=prefix)
        (logp * mask * torch.arange(1, ids.shape[1] + 1)).sum().backward()  # position weights: a misalignment would show
    grads = torch.cat([q.grad.flatten() for q in model.parameters() if q.grad is not None])
    model.zero_grad()
    model.eval()
    return logp.detach(), ent, grads, saved[0]


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_checkpointed_pass_gives_the_plain_pass_logprobs_and_gradients(tiny, bf16, shared):
    ids, attn, mask, keys = _tasks()
    prefix = shared_prefixes(ids, attn, mask, keys) if shared else None
    lp0, ent0, g0, saved0 = _run(tiny.model, ids, attn, mask, prefix, bf16, checkpointed=False)
    lp1, ent1, g1, saved1 = _run(tiny.model, ids, attn, mask, prefix, bf16, checkpointed=True)
    assert g0.abs().max() > 0
    # the recomputation repeats the same operations; gradients reaching a shared prompt's keys are
    # summed in another order (fp32: up to 2e-6 on gradients of size 63), so float rounding only
    assert torch.allclose(lp1, lp0, atol=1e-6) and torch.allclose(ent1, ent0, atol=1e-5)
    assert torch.allclose(g1, g0, atol=1e-5 * float(g0.abs().max()))
    assert saved1 < saved0  # the output layer's tensors are kept either way; the layers' below


def test_checkpointed_layers_keep_only_their_inputs(tiny):
    ids = torch.randint(0, 1000, (4, 64), generator=torch.Generator().manual_seed(0))
    decoder = tiny.model.get_decoder()

    def saved_bytes(checkpointed: bool) -> int:
        total = [0]

        def pack(t):
            total[0] += t.numel() * t.element_size()
            return t

        with training_attention(tiny.model, "grouped"), checkpointed_layers(tiny.model, checkpointed):
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                hidden = decoder(input_ids=ids, use_cache=False).last_hidden_state
            hidden.square().sum().backward()
        tiny.model.zero_grad()
        return total[0]

    plain, ckpt = saved_bytes(False), saved_bytes(True)
    assert ckpt < plain / 4, (ckpt, plain)


def test_replayable_cache_records_once_and_a_frozen_cache_stores_nothing():
    k1, v1 = torch.randn(2, 1, 3, 4), torch.randn(2, 1, 3, 4)
    c = ReplayableCache()
    assert torch.equal(c.update(k1, v1, 0)[0], k1)
    k1b = torch.randn(2, 1, 3, 4)
    assert c.update(k1b, k1b, 0)[0] is k1b  # a replay returns its own tensors...
    assert torch.equal(c.layers[0].keys, k1) and c.get_seq_length() == 3  # ...and does not store them
    f = c.frozen_rows(torch.tensor([1, 1, 0]))  # row b holds the prompt of c's row index[b]
    k2, v2 = torch.randn(3, 1, 2, 4), torch.randn(3, 1, 2, 4)
    for _ in range(2):  # the same answer every time
        k, v = f.update(k2, v2, 0)
        assert torch.equal(k, torch.cat([k1[[1, 1, 0]], k2], -2)) and torch.equal(v, torch.cat([v1[[1, 1, 0]], v2], -2))
    assert f.get_seq_length() == 3 and torch.equal(c.layers[0].keys, k1)  # the recording cache is left as it was


def test_layers_are_restored_and_a_model_without_layers_is_refused(tiny):
    layers = decoder_layers(tiny.model)
    assert layers is not None and len(layers) == tiny.model.config.num_hidden_layers
    with checkpointed_layers(tiny.model):
        assert all("forward" in vars(layer) for layer in layers)
    assert not any("forward" in vars(layer) for layer in layers)
    with pytest.raises(ValueError, match="activation_checkpointing"):
        with checkpointed_layers(torch.nn.Linear(2, 2)):
            pass
    with checkpointed_layers(torch.nn.Linear(2, 2), enabled=False):  # off: nothing to find
        pass
