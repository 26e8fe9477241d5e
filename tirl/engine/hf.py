"""HFEngine: in-process sampling from a transformers causal LM.

Two paths behind one interface. For Llama-family models (Llama, SmolLM, Qwen2) the fast path
runs tirl's own decoding forward (``llama_fast``) under a continuous batcher with a slot KV
cache and prefix forking (``batcher``). Any other model runs the reference path: micro-batches,
left-padded, prefilled once and decoded with the model's own forward and KV cache.

Either way each row stops on EOS / a stop token, on a stop string (checked incrementally on the
decoded tail) or on its token budget, and the engine samples from the live weights: the fast
path notices any in-place change of the model's parameters (an optimiser step) and copies the
new weights before the next call, dropping every cached prefix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import torch

from tirl.config.engine import HFEngineConfig
from tirl.engine.base import Completion, Engine, EngineCounters, EngineMemory, FinishReason, GenerationRequest
from tirl.engine.batcher import ContinuousBatcher
from tirl.engine.device import resolve_bf16
from tirl.engine.llama_fast import FastLlama, supports
from tirl.engine.sampling import sample_tokens
from tirl.engine.stops import StopChecker
from tirl.models.cache import cache_arg


class HFEngine(Engine):
    # concurrent agenerate calls join the fast path's running batch; the reference path runs
    # each alone (as it always has on this path)
    async_native = True

    def __init__(self, model, tokenizer, config: HFEngineConfig | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or HFEngineConfig()
        self.bf16 = resolve_bf16(self.config.autocast_bf16)
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.eos_ids = self._eos_ids()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.max_context = int(getattr(model.config, "max_position_embeddings", 2048))
        self._tokens_generated = 0
        self.fast_path_reason = supports(model) if self.config.fast else "disabled by engine.fast=false"
        self.batcher: ContinuousBatcher | None = None
        self._driver: asyncio.Task | None = None
        if self.fast_path_reason is None:
            # bf16 end to end (matrices, activations, KV cache) wherever bf16 is on (auto: native
            # bf16 CPUs, where it decodes faster than fp32: docs/BENCHMARKS.md,
            # bench/engine_precision.py; decode attention goes through SDPA in bf16).
            self.fast = FastLlama(model, bf16=self.bf16)
            self.batcher = ContinuousBatcher(
                self.fast,
                tokenizer,
                self.eos_ids,
                self.config.max_batch,
                self.config.prefill_chunk,
                int(self.config.prefix_cache_gb * 2**30),
                self.generator,
                self.config.decode_threads,
            )

    @property
    def tokens_generated(self) -> int:
        return self._tokens_generated + (self.batcher.stats.tokens_generated if self.batcher else 0)

    def counters(self) -> EngineCounters:
        """Cumulative work counters (the trainer logs their per-step differences); the reference
        path keeps no prefixes and counts sampled tokens only."""
        if self.batcher is None:
            return EngineCounters(tokens_generated=self.tokens_generated)
        st = self.batcher.stats
        return EngineCounters(
            tokens_generated=self.tokens_generated,
            prefill_tokens=st.prefill_tokens,
            prefix_tokens_reused=st.prefix_tokens_reused,
            prefix_tokens_recomputed=st.prefix_tokens_recomputed,
        )

    def memory(self, reset_peak: bool = False) -> EngineMemory:
        if self.batcher is None:
            return EngineMemory()
        store, kv = self.batcher.store, self.batcher.kv
        mem = EngineMemory(
            weights_copy=self.fast.copied_bytes(),
            kv_cache=kv.nbytes() if kv is not None else 0,
            prefix_store=store.nbytes,
            prefix_store_peak=store.peak_nbytes,
        )
        if reset_peak:
            store.peak_nbytes = store.nbytes
        return mem

    def free_cache(self) -> None:
        """Drop the prefix store and the slot KV cache (re-allocated, at the size the next
        requests need, when they come). Refused while requests are in flight."""
        if self.batcher is None:
            return
        if self.batcher.busy:
            raise RuntimeError("free_cache while the engine is generating")
        self.batcher.reset_cache()
        self.batcher.kv = None

    def sync_weights(self) -> None:
        """Copy the model's current weights into the fast path (also done automatically when the
        parameters changed in place) and drop cached prefixes."""
        if self.batcher is not None:
            self.fast.sync()
            self.batcher.reset_cache()

    def _eos_ids(self) -> list[int]:
        ids = set()
        for src in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(src, int):
                ids.add(src)
            elif isinstance(src, (list, tuple)):
                ids.update(int(i) for i in src)
        if not ids:
            raise ValueError("the tokenizer and generation config name no EOS token")
        return sorted(ids)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if self.batcher is not None:
            if self.fast.stale():
                self.sync_weights()
            return self.batcher.run(requests)
        return self._generate_reference(requests)

    async def agenerate(self, request: GenerationRequest) -> Completion:
        """One request, from a coroutine. On the fast path, concurrent calls share the running
        batch: a trajectory waiting on a tool is simply not in the batch, and its next turn joins
        as soon as it is submitted, while the other rows keep decoding."""
        if self.batcher is None:
            return self._generate_reference([request])[0]
        fut = asyncio.get_running_loop().create_future()
        self.batcher.submit(request, fut)
        if self._driver is None or self._driver.done():
            if self.fast.stale():
                self.sync_weights()
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        return await fut

    async def _drive(self) -> None:
        """Step the batcher while it has work, yielding to the event loop between steps so tool
        calls progress and finished trajectories submit their next turn."""
        try:
            await asyncio.sleep(0)  # let every coroutine started together submit first
            while self.batcher.busy:
                for fut, comp in self.batcher.step():
                    if not fut.done():
                        fut.set_result(comp)
                await asyncio.sleep(0)
        except BaseException as e:
            for fut in self.batcher.abort():
                if not fut.done():
                    fut.set_exception(e if isinstance(e, Exception) else RuntimeError(f"engine stopped: {e!r}"))
            raise

    def _generate_reference(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        # longest first, so a micro-batch holds prefixes of similar length (less padding)
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].prefix_ids))
        out: list[Completion | None] = [None] * len(requests)
        for start in range(0, len(order), self.config.max_batch):
            chunk = order[start : start + self.config.max_batch]
            for i, c in zip(chunk, self._generate_batch([requests[i] for i in chunk])):
                out[i] = c
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def _generate_batch(self, reqs: list[GenerationRequest]) -> list[Completion]:
        B = len(reqs)
        for r in reqs:
            if not r.prefix_ids:
                raise ValueError("a generation request needs a non-empty prefix")
            if len(r.prefix_ids) >= self.max_context:
                raise ValueError(f"prefix of {len(r.prefix_ids)} tokens does not fit the model's context of {self.max_context}")
        budget = [min(r.sampling.max_new_tokens, self.max_context - len(r.prefix_ids)) for r in reqs]
        L = max(len(r.prefix_ids) for r in reqs)
        ids_BL = torch.full((B, L), self.pad_id, dtype=torch.long)
        mask_BL = torch.zeros((B, L), dtype=torch.long)
        for b, r in enumerate(reqs):  # left padding: every row's next token sits at column L
            ids_BL[b, L - len(r.prefix_ids) :] = torch.tensor(r.prefix_ids)
            mask_BL[b, L - len(r.prefix_ids) :] = 1
        temperature_B = torch.tensor([r.sampling.temperature for r in reqs], dtype=torch.float32)
        top_k_B = torch.tensor([r.sampling.top_k for r in reqs], dtype=torch.long)
        top_p_B = torch.tensor([r.sampling.top_p for r in reqs], dtype=torch.float32)
        stop_ids = [set(self.eos_ids) | set(r.sampling.stop_token_ids) for r in reqs]
        checkers = [StopChecker(self.tokenizer, r.sampling.stop_strings) for r in reqs]
        gens = [torch.Generator().manual_seed(r.seed if r.seed is not None else self.draw_seed()) for r in reqs]

        tokens: list[list[int]] = [[] for _ in reqs]
        logps: list[list[float]] = [[] for _ in reqs]
        ents: list[list[float]] = [[] for _ in reqs]
        finish: list[FinishReason | None] = [None] * B
        stop_str: list[str | None] = [None] * B

        from transformers import DynamicCache

        cache = DynamicCache()
        pos_BL = (mask_BL.cumsum(-1) - 1).clamp(min=0)
        logits_BV = self._forward(ids_BL, mask_BL, pos_BL, cache)
        for _ in range(max(budget)):
            s = sample_tokens(
                logits_BV, temperature_B, top_k_B, top_p_B, uniform_B=torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in gens])
            )
            next_B = s.token_B.clone()
            for b in range(B):
                if finish[b] is not None:
                    next_B[b] = self.pad_id
                    continue
                t = int(s.token_B[b])
                tokens[b].append(t)
                logps[b].append(float(s.logprob_B[b]))
                ents[b].append(float(s.entropy_B[b]))
                if t in stop_ids[b]:
                    finish[b] = FinishReason.EOS
                elif (hit := checkers[b].find(tokens[b])) is not None:
                    finish[b], stop_str[b] = FinishReason.STOP_STRING, hit
                elif len(tokens[b]) >= budget[b]:
                    finish[b] = FinishReason.LENGTH
            if all(f is not None for f in finish):
                break
            alive_B = torch.tensor([1 if f is None else 0 for f in finish], dtype=torch.long)
            mask_BL = torch.cat([mask_BL, alive_B[:, None]], dim=1)
            pos_B1 = (mask_BL.sum(-1, keepdim=True) - 1).clamp(min=0)
            logits_BV = self._forward(next_B[:, None], mask_BL, pos_B1, cache)
        self._tokens_generated += sum(len(t) for t in tokens)
        return [
            Completion(
                token_ids=tokens[b], logprobs=logps[b], entropy=ents[b], finish_reason=finish[b] or FinishReason.LENGTH, stop_string=stop_str[b]
            )
            for b in range(B)
        ]

    def _forward(self, ids_BL, mask_BL, pos_BL, cache) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(input_ids=ids_BL, attention_mask=mask_BL, position_ids=pos_BL, use_cache=True, logits_to_keep=1, **cache_arg(cache))
        return out.logits[:, -1, :].float()
