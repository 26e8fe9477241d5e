"""VLLMEngine against tirl's HFEngine on the real SmolLM2-135M-Instruct (vLLM's CPU attention
kernels do not run tiny-random's 16-wide heads): greedy ids, log-probs and entropies of the
filtered distribution, EOS / stop-string / stop-id / length endings, seeds, the asynchronous
interface with the agent loop, and weight syncs (a full-weight change and a LoRA adapter).

Marked ``vllm`` (deselected by default; ``make test-vllm`` installs vLLM's CPU build into
.venv-vllm and runs them). vLLM is imported inside the fixtures only, so collecting this file
never imports it.
"""

import asyncio
import copy
import math

import pytest
import torch

from tirl.engine import GenerationRequest, HFEngine, HFEngineConfig, SamplingParams
from tirl.engine.base import FinishReason
from tirl.engine.sampling import filtered_logprobs

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def smol():
    pytest.importorskip("vllm")
    from tirl.models import load_model

    lm = load_model("smollm2-135m-instruct")
    lm.model.eval()
    return lm


def _engine_config(**over):
    from tirl.engine.factory import EngineConfig
    from tirl.engine.vllm_engine import VLLMEngineConfig

    return EngineConfig(backend="vllm", max_batch=16, seed=0, vllm=VLLMEngineConfig(kv_cache_gb=0.5, **over))


@pytest.fixture(scope="module")
def engine(smol):
    from tirl.engine.vllm_engine import VLLMEngine

    eng = VLLMEngine(smol.model, smol.tokenizer, _engine_config())
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def hf(smol):
    return HFEngine(smol.model, smol.tokenizer, HFEngineConfig(seed=0))


def _prompt(tok, text):
    ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


QUESTIONS = ["What is 2+3? Answer briefly.", "Name a colour.", "Write one short sentence about the sea.", "What is the capital of France?"]


def test_greedy_matches_hf_ids_logprobs_and_eos(engine, hf, smol):
    reqs = [GenerationRequest(_prompt(smol.tokenizer, q), SamplingParams(temperature=0.0, max_new_tokens=40)) for q in QUESTIONS]
    got, ref = engine.generate(reqs), hf.generate(reqs)
    for g, r in zip(got, ref):
        assert g.token_ids == r.token_ids
        assert g.finish_reason == r.finish_reason
        assert max(abs(a - b) for a, b in zip(g.logprobs, r.logprobs)) < 2e-3
        assert len(g.entropy) == len(g.token_ids) and all(math.isfinite(h) and h >= 0 for h in g.entropy)
    eos = [g for g in got if g.finish_reason is FinishReason.EOS]
    assert eos, "no greedy answer ended with EOS"
    for g in eos:
        assert g.token_ids[-1] == smol.tokenizer.eos_token_id  # the EOS token is part of the completion


@torch.no_grad()
def _teacher_forced(model, prefix, ids, temperature, top_k, top_p):
    """Per sampled token: its log-prob, the entropy and the support size of the filtered
    distribution, by one full forward pass."""
    x = torch.tensor([prefix + ids])
    logits = model(x).logits[0, len(prefix) - 1 : len(prefix) - 1 + len(ids)].float()
    n = len(ids)
    logp = filtered_logprobs(logits, torch.full((n,), temperature), torch.full((n,), top_k, dtype=torch.long), torch.full((n,), top_p))
    p = logp.exp()
    ent = -(p * logp.masked_fill(p == 0, 0.0)).sum(-1)
    return logp.gather(-1, torch.tensor(ids)[:, None]).squeeze(-1), ent, (p > 0).sum(-1)


@pytest.mark.parametrize("temperature,top_k,top_p", [(0.7, 10, 1.0), (1.3, 0, 0.8), (1.0, 15, 0.95)])
def test_sampled_logprobs_and_entropies_are_of_the_sampling_distribution(engine, smol, temperature, top_k, top_p):
    prefix = _prompt(smol.tokenizer, "Tell me a story about a fox.")
    (c,) = engine.generate([GenerationRequest(prefix, SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=24), seed=11)])
    assert len(c.token_ids) == len(c.logprobs) == len(c.entropy) > 0
    logp, ent, support = _teacher_forced(smol.model, prefix, c.token_ids, temperature, top_k, top_p)
    assert torch.allclose(torch.tensor(c.logprobs), logp, atol=2e-3), (c.logprobs, logp.tolist())
    # the top-20 entropy: exact where the filtered distribution has <= 20 tokens, else a lower bound
    got = torch.tensor(c.entropy)
    exact = support <= 20
    assert bool(exact.any())
    assert torch.allclose(got[exact], ent[exact], atol=2e-3), (got.tolist(), ent.tolist())
    assert bool((got[~exact] <= ent[~exact] + 2e-3).all())


def test_stop_string_is_included_and_matches_hf(engine, hf, smol):
    prefix = _prompt(smol.tokenizer, QUESTIONS[0])
    (full,) = hf.generate([GenerationRequest(prefix, SamplingParams(temperature=0.0, max_new_tokens=40))])
    text = smol.tokenizer.decode(full.token_ids)
    stop = " is" if " is" in text else text.split()[1]
    req = GenerationRequest(prefix, SamplingParams(temperature=0.0, max_new_tokens=40, stop_strings=("never-there", stop)))
    (g,), (r,) = engine.generate([req]), hf.generate([req])
    assert g.finish_reason is FinishReason.STOP_STRING and g.stop_string == stop
    assert smol.tokenizer.decode(g.token_ids).endswith(stop)
    assert g.token_ids == r.token_ids and r.stop_string == stop
    assert len(g.token_ids) < len(full.token_ids)


def test_stop_token_ids_and_length(engine, smol):
    prefix = _prompt(smol.tokenizer, QUESTIONS[2])
    (full,) = engine.generate([GenerationRequest(prefix, SamplingParams(temperature=0.0, max_new_tokens=30))])
    third = full.token_ids[2]
    cut = full.token_ids.index(third) + 1
    (s,) = engine.generate([GenerationRequest(prefix, SamplingParams(temperature=0.0, max_new_tokens=30, stop_token_ids=(third,)))])
    assert s.finish_reason is FinishReason.EOS and s.token_ids == full.token_ids[:cut]
    (n,) = engine.generate([GenerationRequest(prefix, SamplingParams(temperature=0.0, max_new_tokens=3))])
    assert n.finish_reason is FinishReason.LENGTH and n.token_ids == full.token_ids[:3]


def test_seeded_samples_do_not_depend_on_the_batch(engine, smol):
    sp = SamplingParams(temperature=1.0, max_new_tokens=20)
    target = GenerationRequest(_prompt(smol.tokenizer, QUESTIONS[1]), sp, seed=123)
    others = [GenerationRequest(_prompt(smol.tokenizer, q), sp, seed=i) for i, q in enumerate(QUESTIONS)]
    alone = engine.generate([target])[0]
    batched = engine.generate(others + [target])[-1]
    assert alone.token_ids == batched.token_ids
    same_prefix = engine.generate([GenerationRequest(target.prefix_ids, sp, seed=s) for s in range(6)])
    assert len({tuple(c.token_ids) for c in same_prefix}) > 1  # different seeds, different samples


def test_prefix_cache_serves_repeated_prefixes(engine, smol):
    # vLLM caches whole blocks (128 tokens on CPU): a prefix of several blocks
    prefix = _prompt(smol.tokenizer, "Explain photosynthesis in detail, step by step, for a student. " * 24)
    assert len(prefix) > 300
    before = engine.counters()
    engine.generate([GenerationRequest(prefix, SamplingParams(max_new_tokens=4), seed=9)])
    engine.generate([GenerationRequest(prefix, SamplingParams(max_new_tokens=4), seed=s) for s in range(3)])
    after = engine.counters()
    assert after.prefix_tokens_reused - before.prefix_tokens_reused >= 3 * (len(prefix) // 2)
    assert after.prefill_tokens - before.prefill_tokens <= 4 * len(prefix) - 3 * (len(prefix) // 2)


def test_agenerate_matches_generate_and_runs_the_agent_loop(engine, smol, echo_tool):
    from tirl.protocol import TagProtocol
    from tirl.rollout import RolloutConfig, rollout
    from tirl.types import Task

    sp = SamplingParams(temperature=1.0, max_new_tokens=16)
    reqs = [GenerationRequest(_prompt(smol.tokenizer, q), sp, seed=40 + i) for i, q in enumerate(QUESTIONS)]
    sync = engine.generate(reqs)

    async def many():
        return await asyncio.gather(*(engine.agenerate(r) for r in reqs))

    asyn = asyncio.run(many())
    assert [c.token_ids for c in asyn] == [c.token_ids for c in sync]

    proto = TagProtocol([echo_tool])
    tasks = [Task(id="a", prompt="What is 2+40? Use python.", answer="42"), Task(id="b", prompt="What is 6*7?", answer="42")]
    cfg = RolloutConfig(group_size=2, max_response_tokens=48, max_turn_tokens=24)
    groups = asyncio.run(rollout(engine, proto, tasks, cfg))
    trajs = [t for g in groups for t in g]
    assert len(trajs) == 4 and all(t.stop_reason is not None and t.n_policy_tokens > 0 for t in trajs)
    for t in trajs:  # token in, token out: the policy segments are the engine's ids with their log-probs
        for seg in t.segments:
            if seg.origin.value == "policy":
                assert len(seg.logprobs) == len(seg.token_ids) == len(seg.entropy)


def test_next_rollout_uses_changed_weights(engine, hf, smol):
    reqs = [GenerationRequest(_prompt(smol.tokenizer, q), SamplingParams(temperature=0.0, max_new_tokens=12)) for q in QUESTIONS[:2]]
    before = [c.token_ids for c in engine.generate(reqs)]
    syncs = engine.counters().weight_syncs
    norm = smol.model.model.norm.weight
    saved = norm.detach().clone()
    try:
        with torch.no_grad():  # an in-place change, as an optimiser step makes
            norm.mul_(-1.0)  # negated logits: greedy picks what was least likely
        changed, ref = engine.generate(reqs), hf.generate(reqs)
        assert engine.counters().weight_syncs == syncs + 1
        assert [c.token_ids for c in changed] == [c.token_ids for c in ref]
        assert [c.token_ids for c in changed] != before
    finally:
        with torch.no_grad():
            norm.copy_(saved)
    assert [c.token_ids for c in engine.generate(reqs)] == before


def test_seeded_prompts_larger_than_a_step_do_not_break_prefill(engine):
    # 6 x 700 prompt tokens do not fit one 2048-token step: with chunked prefill vLLM's CPU
    # runner failed on seeded requests ("CPU Generator does not use offset")
    reqs = [GenerationRequest(list(range(1000 + i, 1700 + i)), SamplingParams(max_new_tokens=4), seed=i) for i in range(6)]
    out = engine.generate(reqs)
    assert len(out) == 6 and all(1 <= len(c.token_ids) <= 4 for c in out)


# last: a second vLLM engine in the process (vLLM's parallel state is process-global, and
# closing an engine tears it down for every engine)
def test_lora_adapter_is_merged_and_built_from_the_config(smol):
    from peft import LoraConfig, get_peft_model

    from tirl.config import load_config
    from tirl.engine.factory import build_engine
    from tirl.engine.vllm_engine import VLLMEngine

    base = copy.deepcopy(smol.model)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))
    model.eval()
    cfg = load_config(None, ["engine.backend=vllm", "engine.max_batch=8", "engine.vllm.kv_cache_gb=0.5"])
    eng = build_engine(cfg.engine, model, smol.tokenizer)
    try:
        assert isinstance(eng, VLLMEngine)
        reqs = [GenerationRequest(_prompt(smol.tokenizer, q), SamplingParams(temperature=0.0, max_new_tokens=12)) for q in QUESTIONS[:3]]
        got = eng.generate(reqs)
        ref = HFEngine(model, smol.tokenizer, HFEngineConfig(seed=0)).generate(reqs)
        assert [c.token_ids for c in got] == [c.token_ids for c in ref]
        assert max(abs(a - b) for g, r in zip(got, ref) for a, b in zip(g.logprobs, r.logprobs)) < 2e-3
        with model.disable_adapter():
            plain = HFEngine(model, smol.tokenizer, HFEngineConfig(seed=0, fast=False)).generate(reqs)
        assert [c.token_ids for c in got] != [c.token_ids for c in plain]  # the adapter mattered
        # a training step on the adapter only: the next call reloads the merged weights
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.mul_(-1.0)
        again = eng.generate(reqs)
        ref2 = HFEngine(model, smol.tokenizer, HFEngineConfig(seed=0)).generate(reqs)
        assert [c.token_ids for c in again] == [c.token_ids for c in ref2]
    finally:
        eng.close()


def test_default_paths_do_not_import_vllm_where_it_is_installed(smol):
    from test_engine_backend import test_default_paths_do_not_import_vllm

    test_default_paths_do_not_import_vllm()
