"""HFEngine: in-process batched sampling with a transformers causal LM and its KV cache.

Correctness first: requests are grouped into micro-batches, left-padded, prefilled once and
decoded token by token with the model's KV cache. Each row stops on EOS / a stop token, on a
stop string (checked incrementally on the decoded tail) or on its token budget. The engine
holds the live model object, so an optimiser step on that model is visible to the next call.
"""

from __future__ import annotations

from typing import Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field

from tirl.engine.base import Completion, FinishReason, GenerationRequest
from tirl.engine.device import resolve_bf16
from tirl.engine.sampling import sample_tokens


class HFEngineConfig(BaseModel):
    """The in-process engine (the ``engine`` section of the config)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_batch: int = Field(64, ge=1)
    """Rows decoded together; larger batches are faster per token but pad more."""
    autocast_bf16: bool | None = None
    """Run forward passes under bf16 autocast; None (auto): only where the CPU has native bf16
    arithmetic (AVX512-BF16/AMX), elsewhere bf16 is slower than fp32."""
    seed: int = 0
    """Seed of the engine's sampling generator."""


class _StopChecker:
    """Finds stop strings in the decoded tail of a row. Only the last few tokens are decoded:
    a stop string of n characters spans at most n tokens."""

    def __init__(self, tokenizer, stop_strings: Sequence[str]):
        self.tokenizer = tokenizer
        self.stops = [s for s in stop_strings if s]
        self.window = max((len(s) for s in self.stops), default=0) + 1

    def find(self, ids: list[int]) -> str | None:
        if not self.stops:
            return None
        tail = self.tokenizer.decode(ids[-self.window :], skip_special_tokens=False)
        # the newest token must take part in the match, otherwise it was found earlier
        newest = self.tokenizer.decode(ids[-1:], skip_special_tokens=False)
        for s in self.stops:
            pos = tail.rfind(s)
            if pos >= 0 and pos + len(s) > len(tail) - len(newest):
                return s
        return None


class HFEngine:
    def __init__(self, model, tokenizer, config: HFEngineConfig | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or HFEngineConfig()
        self.bf16 = resolve_bf16(self.config.autocast_bf16)
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.eos_ids = self._eos_ids()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.max_context = int(getattr(model.config, "max_position_embeddings", 2048))
        self.tokens_generated = 0

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
        checkers = [_StopChecker(self.tokenizer, r.sampling.stop_strings) for r in reqs]

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
            s = sample_tokens(logits_BV, temperature_B, top_k_B, top_p_B, self.generator)
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
        self.tokens_generated += sum(len(t) for t in tokens)
        return [
            Completion(token_ids=tokens[b], logprobs=logps[b], entropy=ents[b], finish_reason=finish[b] or FinishReason.LENGTH, stop_string=stop_str[b])
            for b in range(B)
        ]

    def _forward(self, ids_BL, mask_BL, pos_BL, cache) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(input_ids=ids_BL, attention_mask=mask_BL, position_ids=pos_BL, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :].float()
