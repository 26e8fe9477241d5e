"""Memory accounting: a phase's own peak resident memory (tirl.train.memory.PhasePeak) and the
bytes an engine holds beside the model (Engine.memory)."""

import numpy as np
import pytest

from tirl.engine import GenerationRequest, HFEngine, HFEngineConfig, SamplingParams
from tirl.train.memory import PhasePeak, rss_bytes


def test_a_phase_peak_sees_its_own_allocation_and_not_the_previous_phases():
    probe = PhasePeak()
    probe.start()
    if probe.peak_gb() is None:
        pytest.skip("this kernel cannot reset the resident-memory high-water mark")
    base = rss_bytes() / 2**30
    probe.start()
    big = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
    peak_with = probe.peak_gb()
    del big
    probe.start()
    peak_without = probe.peak_gb()
    assert peak_with - base > 0.25
    assert peak_without - base < 0.1  # the freed 300 MiB of the phase before does not count


@pytest.mark.parametrize("bf16", [False, True])
def test_engine_memory_reports_its_weights_kv_cache_and_prefix_store(tiny, bf16):
    eng = HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig(autocast_bf16=bf16))
    before = eng.memory()
    assert before.kv_cache == 0 and before.prefix_store == 0 and before.weights_copy > 0
    # every copied matrix of the tiny model, at the engine's precision
    n_params = sum(p.numel() for n, p in tiny.model.named_parameters() if "proj" in n or "lm_head" in n)
    if not any("lm_head" in n for n, _ in tiny.model.named_parameters()):  # tied head: copied from the embedding
        n_params += tiny.model.get_input_embeddings().weight.numel()
    assert before.weights_copy >= n_params * (2 if bf16 else 4)
    prompt = list(tiny.tokenizer("Compute 12 + 30.", add_special_tokens=False)["input_ids"])
    eng.generate([GenerationRequest(prompt, SamplingParams(temperature=1.0, max_new_tokens=8)) for _ in range(3)])
    during = eng.memory(reset_peak=True)
    assert during.kv_cache > 0
    assert during.prefix_store_peak >= during.prefix_store > 0  # finished rows are kept for later turns
    eng.sync_weights()  # new weights: every stored prefix is stale and dropped
    after = eng.memory()
    assert after.prefix_store == 0 and after.prefix_store_peak == during.prefix_store


def test_free_cache_drops_keys_and_values_and_generation_goes_on(tiny):
    eng = HFEngine(tiny.model, tiny.tokenizer, HFEngineConfig(autocast_bf16=False))
    prompt = list(tiny.tokenizer("Compute 12 + 30.", add_special_tokens=False)["input_ids"])
    greedy = [GenerationRequest(prompt, SamplingParams(temperature=0.0, max_new_tokens=8))]
    first = eng.generate(greedy)[0].token_ids
    assert eng.memory().kv_cache > 0 and eng.memory().prefix_store > 0
    eng.free_cache()
    assert eng.memory().kv_cache == 0 and eng.memory().prefix_store == 0
    assert eng.generate(greedy)[0].token_ids == first  # the cache is rebuilt; same tokens
