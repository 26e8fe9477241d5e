"""HFEngine: log-probs equal a teacher-forced forward pass, batching and prefix continuation are
exact, stop strings and stop tokens end rows, and weight changes are visible at once."""

import torch

from tirl.engine import FinishReason, GenerationRequest, HFEngine, HFEngineConfig, SamplingParams
from tirl.engine.stops import StopChecker


def _engine(tiny, **kw):
    return HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig(autocast_bf16=False, **kw))


def _prompt(tiny, text="Compute 12 + 30."):
    return list(tiny.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_logprobs_match_teacher_forcing(tiny):
    eng = _engine(tiny)
    p = _prompt(tiny)
    c = eng.generate([GenerationRequest(p, SamplingParams(temperature=1.0, max_new_tokens=12))])[0]
    assert len(c.token_ids) == len(c.logprobs) == len(c.entropy) > 0
    ids = torch.tensor([p + c.token_ids])
    with torch.no_grad():
        logits = tiny.model(ids).logits[0, len(p) - 1 : -1].float()
    lp = torch.log_softmax(logits, -1)
    want = lp.gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(-1)
    assert torch.allclose(want, torch.tensor(c.logprobs), atol=1e-4)
    ent = -(lp.exp() * lp).sum(-1)
    assert torch.allclose(ent, torch.tensor(c.entropy), atol=1e-3)


def test_batched_equals_single_and_prefix_continuation(tiny):
    eng = _engine(tiny, max_batch=8)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=10)
    prompts = [_prompt(tiny, "a"), _prompt(tiny, "a much longer prompt with more tokens in it"), _prompt(tiny, "mid size prompt")]
    batched = eng.generate([GenerationRequest(p, greedy) for p in prompts])
    for p, b in zip(prompts, batched):
        single = eng.generate([GenerationRequest(p, greedy)])[0]
        assert single.token_ids == b.token_ids
    # continuing from prefix + first 4 sampled tokens reproduces the rest
    p, full = prompts[1], batched[1]
    cont = eng.generate([GenerationRequest(p + full.token_ids[:4], SamplingParams(temperature=0.0, max_new_tokens=6))])[0]
    assert cont.token_ids == full.token_ids[4:]


def test_length_and_stop_token(tiny):
    eng = _engine(tiny)
    p = _prompt(tiny)
    c = eng.generate([GenerationRequest(p, SamplingParams(temperature=0.0, max_new_tokens=5))])[0]
    assert c.finish_reason is FinishReason.LENGTH and len(c.token_ids) == 5
    first = c.token_ids[0]
    c2 = eng.generate([GenerationRequest(p, SamplingParams(temperature=0.0, max_new_tokens=5, stop_token_ids=(first,)))])[0]
    assert c2.finish_reason is FinishReason.EOS and c2.token_ids == [first]


def test_stop_checker_finds_strings_across_tokens(tiny):
    tok = tiny.tokenizer
    chk = StopChecker(tok, ["</python>"])
    ids = list(tok("x = 1\n</python>", add_special_tokens=False)["input_ids"])
    hits = [chk.find(ids[: i + 1]) for i in range(len(ids))]
    assert hits[-1] == "</python>" and all(h is None for h in hits[:-1])
    assert chk.find(ids + list(tok(" more", add_special_tokens=False)["input_ids"])) is None  # found earlier, not again


def test_sampling_is_seeded(tiny):
    p = _prompt(tiny)
    sp = SamplingParams(temperature=1.0, max_new_tokens=8)
    a = _engine(tiny, seed=3).generate([GenerationRequest(p, sp)] * 2)
    b = _engine(tiny, seed=3).generate([GenerationRequest(p, sp)] * 2)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]


def test_weight_update_is_visible_to_next_generation(tiny):
    from tirl.models import load_model

    lm = load_model("tiny-random")  # a private copy: this test edits weights
    eng = HFEngine(lm.model, lm.tokenizer, HFEngineConfig(autocast_bf16=False))
    p = _prompt(tiny)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=3)
    before = eng.generate([GenerationRequest(p, greedy)])[0].token_ids
    target = (before[0] + 1234) % lm.model.config.vocab_size
    with torch.no_grad():  # an "optimiser step": point the target's output row along the last hidden state
        h = lm.model.model(torch.tensor([p])).last_hidden_state[0, -1]
        lm.model.lm_head.weight[target] = 100.0 * h / h.dot(h)
    after = eng.generate([GenerationRequest(p, greedy)])[0].token_ids
    assert after[0] == target != before[0]


def test_engine_sees_a_fused_optimiser_step(tiny):
    """make_optimizer's fused AdamW writes weights in place without bumping version counters;
    the engine must still notice the step and sample from the new weights."""
    import copy

    import torch

    from tirl.engine.llama_fast import weight_version
    from tirl.train.policy import make_optimizer

    model = copy.deepcopy(tiny.model)
    opt = make_optimizer(model.parameters(), lr=1e-2)
    before = weight_version(model)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    assert weight_version(model) != before
