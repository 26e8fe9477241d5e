"""The fast path of HFEngine (own forward, continuous batching, prefix forking): the same
numbers as the model's own forward, the same greedy tokens as the reference path whatever the
batching, prefixes computed once, LoRA adapters folded in, and the prefix store's bookkeeping."""

import torch

from tirl.engine import GenerationRequest, HFEngine, HFEngineConfig, SamplingParams
from tirl.engine.llama_fast import FastLlama, KVCache
from tirl.engine.prefix_store import BLOCK, PrefixStore


def _ids(tiny, text):
    return list(tiny.tokenizer(text, add_special_tokens=False)["input_ids"])


def _prompts(tiny):
    texts = ["a", "a much longer prompt with more tokens in it than the others have", "mid size prompt", "a"]
    return [_ids(tiny, t) for t in texts]


def test_fast_forward_matches_model_logits(tiny):
    f = FastLlama(tiny.model)
    torch.manual_seed(0)
    ids = torch.randint(100, 4000, (3, 24))
    with torch.no_grad():
        ref = tiny.model(input_ids=ids).logits
    kv = KVCache(f.n_layers, 5, f.n_kv, f.head_dim, 32)
    rows = torch.tensor([1, 3, 4])  # non-contiguous slots
    # prefill 16 tokens in two column chunks, then decode the rest one token at a time
    for a, b in ((0, 9), (9, 16)):
        pos = torch.arange(a, b)[None].repeat(3, 1)
        got = f.forward(ids[:, a:b], pos, rows, torch.full((3,), b), kv, torch.full((3,), b - a - 1))
    assert torch.allclose(got, ref[:, 15], atol=1e-4)
    for t in range(16, 24):
        got = f.forward(ids[:, t : t + 1], torch.full((3, 1), t), rows, torch.full((3,), t + 1), kv, torch.zeros(3, dtype=torch.long))
        assert torch.allclose(got, ref[:, t], atol=1e-4)


def test_bf16_path_matches_the_model_under_autocast(tiny):
    """bf16 matrices, activations and KV cache: prefill and decode logits stay as close to the
    model's own forward under bf16 autocast as that forward is to fp32 (bf16 rounding, not a
    different model)."""
    f32, b16 = FastLlama(tiny.model), FastLlama(tiny.model, bf16=True)
    assert b16.layers[0].w_gu.dtype == torch.bfloat16 and b16.w_head.dtype == torch.bfloat16
    torch.manual_seed(1)
    ids = torch.randint(100, 4000, (2, 16))
    with torch.no_grad():
        ref32 = tiny.model(input_ids=ids).logits.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ref16 = tiny.model(input_ids=ids).logits.float()
    scale = ref32.std().item()
    autocast_err = (ref16 - ref32).abs().max().item()
    for f, dtype in ((f32, torch.float32), (b16, torch.bfloat16)):
        kv = KVCache(f.n_layers, 2, f.n_kv, f.head_dim, 16, dtype=f.dtype)
        assert kv.k[0].dtype == dtype
        pos = torch.arange(12)[None].repeat(2, 1)
        got = [f.forward(ids[:, :12], pos, torch.arange(2), torch.full((2,), 12), kv, torch.full((2,), 11))]
        for t in range(12, 16):  # decode steps: the grouped attention over the cache
            got.append(
                f.forward(ids[:, t : t + 1], torch.full((2, 1), t), torch.arange(2), torch.full((2,), t + 1), kv, torch.zeros(2, dtype=torch.long))
            )
        err32 = max((g - ref32[:, 11 + i]).abs().max().item() for i, g in enumerate(got))
        err16 = max((g - ref16[:, 11 + i]).abs().max().item() for i, g in enumerate(got))
        if dtype == torch.float32:
            assert err32 < 1e-4
        else:
            assert 0 < err32 < 0.05 * scale and err16 <= 2 * autocast_err + 1e-3


def test_greedy_tokens_equal_reference_path_under_continuous_batching(tiny):
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12)
    reqs = [GenerationRequest(p, greedy) for p in _prompts(tiny) * 3]
    ref = HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig(fast=False, autocast_bf16=False)).generate(reqs)
    # max_batch 2 < 12 requests: rows are refilled and compacted as others finish
    fast = HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig(max_batch=2, autocast_bf16=False))
    assert fast.batcher is not None
    got = fast.generate(reqs)
    assert [c.token_ids for c in got] == [c.token_ids for c in ref]
    for a, b in zip(got, ref):
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)


def test_rows_finishing_mid_batch_leave_the_others_intact(tiny):
    # Budgets differ per request, so rows finish at different steps in the middle of the batch
    # and the tail rows are moved into the freed slots; every row must still decode exactly as
    # the reference path (greedy) and as an unconstrained batch (seeded sampling).
    prompts = _prompts(tiny) * 3
    greedy = [GenerationRequest(p, SamplingParams(temperature=0.0, max_new_tokens=3 + (5 * i) % 13)) for i, p in enumerate(prompts)]
    ref = HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig(fast=False, autocast_bf16=False)).generate(greedy)
    small = HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig(max_batch=5, autocast_bf16=False))
    assert [c.token_ids for c in small.generate(greedy)] == [c.token_ids for c in ref]
    sampled = [GenerationRequest(p, SamplingParams(temperature=1.0, max_new_tokens=3 + (7 * i) % 11), seed=100 + i) for i, p in enumerate(prompts)]
    wide = HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig(max_batch=64, autocast_bf16=False))
    assert [c.token_ids for c in small.generate(sampled)] == [c.token_ids for c in wide.generate(sampled)]


def test_shared_prefixes_are_computed_once(tiny):
    eng = HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig())
    p = _ids(tiny, "a prompt that every sample of the group shares, long enough for a few blocks of tokens " * 2)
    sp = SamplingParams(temperature=1.0, max_new_tokens=6)
    eng.generate([GenerationRequest(p, sp)] * 4)
    st = eng.batcher.stats
    assert st.prefill_tokens == len(p)  # one leader; three identical followers copy it
    assert st.prefix_tokens_reused == 3 * len(p)
    # the next turn: a row's prefix + its sampled turn + a tool result prefills only the new part
    first = eng.generate([GenerationRequest(p, sp)])[0]
    before = st.prefill_tokens
    tool = _ids(tiny, "\n<result>\n42\n</result>\n")
    eng.generate([GenerationRequest(p + first.token_ids + tool, sp)])
    assert st.prefill_tokens - before == len(tool) + 1  # the turn's last token was never fed
    assert st.prefix_tokens_recomputed == 0


def test_branches_from_a_stored_prefix_cost_no_recompute(tiny):
    eng = HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig())
    p = _ids(tiny, "branching point of a tree rollout, shared by all continuations " * 3)
    sp = SamplingParams(temperature=1.0, max_new_tokens=5)
    c = eng.generate([GenerationRequest(p, sp)])[0]
    prefix = p + c.token_ids + _ids(tiny, " observation")
    before = eng.batcher.stats.prefill_tokens
    eng.generate([GenerationRequest(prefix, sp)] * 3)  # three branches from one step
    st = eng.batcher.stats
    assert st.prefill_tokens - before == len(prefix) - (len(p) + len(c.token_ids) - 1)
    assert st.prefix_tokens_recomputed == 0


def test_weight_change_drops_cached_prefixes(tiny):
    from tirl.models import load_model

    lm = load_model("tiny-random")
    eng = HFEngine(lm.model, lm.tokenizer, HFEngineConfig())
    p = _ids(lm, "some prompt " * 10)
    sp = SamplingParams(temperature=0.0, max_new_tokens=4)
    eng.generate([GenerationRequest(p, sp)])
    assert eng.batcher.store.entries
    with torch.no_grad():
        lm.model.lm_head.weight.mul_(1.01)  # in place, like an optimiser step
    eng.generate([GenerationRequest(p, sp)])
    assert eng.batcher.stats.prefill_tokens == 2 * len(p)  # nothing reused across weight versions


def test_lora_adapter_is_folded_in(tiny):
    from peft import LoraConfig, get_peft_model

    from tirl.models import load_model

    lm = load_model("tiny-random")
    model = get_peft_model(lm.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, prm in model.named_parameters():
            if "lora_B" in n:
                prm.normal_(0, 0.5)  # a trained adapter (B starts at 0)
    model.eval()
    f = FastLlama(model)
    ids = torch.randint(100, 4000, (2, 10))
    with torch.no_grad():
        ref = model(input_ids=ids).logits[:, -1]
    kv = KVCache(f.n_layers, 2, f.n_kv, f.head_dim, 16)
    got = f.forward(ids, torch.arange(10)[None].repeat(2, 1), torch.arange(2), torch.full((2,), 10), kv, torch.full((2,), 9))
    assert torch.allclose(got, ref, atol=1e-4)
    with model.disable_adapter(), torch.no_grad():
        base = model(input_ids=ids).logits[:, -1]
    assert not torch.allclose(got, base, atol=1e-2)


def test_prefix_store_lookup_eviction_and_recompute_count():
    kv = lambda n: torch.zeros(1, 2, 1, n, 1)  # noqa: E731 - 8 bytes per token
    a = list(range(3 * BLOCK))
    s = PrefixStore(max_bytes=8 * 5 * BLOCK)
    s.add(a, kv(len(a)))
    eid, n = s.lookup(a[: 2 * BLOCK] + [999] * BLOCK)
    assert eid is not None and n == 2 * BLOCK
    assert s.lookup([5] + a[1:])[0] is None  # first block differs: no match
    eid2, n2 = s.lookup(a + [7, 8])
    assert n2 == len(a)  # the match extends past the last full block, token by token
    b = [1000 + i for i in range(3 * BLOCK)]
    s.add(b, kv(len(b)))  # over budget: the least recently used entry (a) goes
    assert s.lookup(a)[0] is None and s.lookup(b)[1] == len(b)
    assert s.recomputed(a, start=BLOCK) == 2 * BLOCK  # a's blocks were computed before
    s.clear()
    assert s.recomputed(a, start=0) == 0


def test_groups_of_tasks_sharing_a_system_prompt_prefill_each_part_once(tiny):
    eng = HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig())
    system = _ids(tiny, "You are a helpful assistant that runs tools; think, call python, answer in a box. " * 2)
    q1, q2 = _ids(tiny, " First question: what is 12 + 30?"), _ids(tiny, " Second question: what is 7 * 6?")
    from tirl.engine.prefix_store import common_prefix

    p1, p2 = system + q1, system + q2
    sp = SamplingParams(temperature=1.0, max_new_tokens=4)
    eng.generate([GenerationRequest(p, sp) for p in (p2, p1, p2, p1, p1, p2)])
    # one full prompt, then only the part of the other prompt after the shared prefix
    assert eng.batcher.stats.prefill_tokens == len(p1) + len(p2) - common_prefix(p1, p2)
