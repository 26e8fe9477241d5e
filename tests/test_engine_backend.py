"""engine.backend in the config: hf by default, vllm by name, clear errors; and the default code
paths never import vLLM (an optional extra). The vLLM engine itself: tests/test_vllm_engine.py."""

import importlib.util
import subprocess
import sys

import pytest

from tirl.config import ConfigError, load_config
from tirl.engine import HFEngine
from tirl.engine.factory import EngineConfig, build_engine
from tirl.engine.vllm_engine import checkpoint_weights

HAVE_VLLM = importlib.util.find_spec("vllm") is not None


def test_backend_defaults_to_hf_and_is_overridable():
    cfg = load_config(None, [])
    assert cfg.engine.backend == "hf" and isinstance(cfg.engine, EngineConfig)
    cfg = load_config(None, ["engine.backend=vllm", "engine.vllm.dtype=bfloat16", "engine.vllm.kv_cache_gb=1.5", "engine.max_batch=8"])
    assert (cfg.engine.backend, cfg.engine.vllm.dtype, cfg.engine.vllm.kv_cache_gb, cfg.engine.max_batch) == ("vllm", "bfloat16", 1.5, 8)
    with pytest.raises(ConfigError, match="engine.backend"):
        load_config(None, ["engine.backend=sglang"])
    with pytest.raises(ConfigError, match="engine.vllm.nope"):
        load_config(None, ["engine.vllm.nope=1"])


def test_entropy_strategies_need_vllm_entropies():
    with pytest.raises(ConfigError, match="entropy_top_k"):
        load_config(None, ["engine.backend=vllm", "engine.vllm.entropy_top_k=0", "strategy.name=arpo"])
    load_config(None, ["engine.backend=vllm", "engine.vllm.entropy_top_k=0"])  # flat groups do not read them
    load_config(None, ["engine.backend=hf", "engine.vllm.entropy_top_k=0", "strategy.name=elpo"])


def test_hf_backend_builds_hfengine(tiny):
    eng = build_engine(EngineConfig(seed=3), tiny.model, tiny.tokenizer)
    assert isinstance(eng, HFEngine) and eng.config.seed == 3


@pytest.mark.skipif(HAVE_VLLM, reason="vLLM is installed here")
def test_vllm_backend_without_vllm_says_how_to_install(tiny):
    with pytest.raises(ImportError, match=r"tirl\[vllm\]"):
        build_engine(EngineConfig(backend="vllm"), tiny.model, tiny.tokenizer)


def test_default_paths_do_not_import_vllm():
    code = (
        "import sys; import tirl.config, tirl.train.components, tirl.engine.factory, tirl.cli.main; "
        "tirl.config.load_config(None, ['engine.backend=vllm']); "
        "sys.exit('vllm imported' if any(m == 'vllm' or m.startswith('vllm.') for m in sys.modules) else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_checkpoint_weights_merge_lora_without_touching_the_model(tiny):
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    plain = dict(checkpoint_weights(tiny.model))
    assert set(plain) == {n for n, _ in tiny.model.named_parameters(remove_duplicate=False)}
    assert "lm_head.weight" in plain  # tied to the embeddings, listed under both names
    model = get_peft_model(copy.deepcopy(tiny.model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], init_lora_weights=False))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    merged = dict(checkpoint_weights(model))
    assert set(merged) == set(plain)  # checkpoint names, no lora_A/lora_B/base_layer
    ref = copy.deepcopy(model).merge_and_unload().state_dict()
    for name, w in merged.items():
        assert torch.allclose(w, ref[name], atol=1e-6), name
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(merged[q], plain[q])  # the adapter is in
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_runtime_close_closes_the_tools_then_the_engine_even_when_a_tool_fails(tiny):
    import asyncio

    from tirl.train.components import Runtime

    closed = []

    class Tool:
        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        async def aclose(self):
            closed.append(self.name)
            if self.fail:
                raise RuntimeError("tool failed to close")

    eng = build_engine(EngineConfig(seed=0), tiny.model, tiny.tokenizer)
    eng.close = lambda: closed.append("engine")
    asyncio.run(Runtime(tools=[Tool("a")], protocol=None, engine=eng).aclose())
    assert closed == ["a", "engine"]
    closed.clear()
    with pytest.raises(RuntimeError, match="tool failed"):
        asyncio.run(Runtime(tools=[Tool("b", fail=True)], protocol=None, engine=eng).aclose())
    assert closed == ["b", "engine"]
