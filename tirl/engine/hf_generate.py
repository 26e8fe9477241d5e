"""HFGenerateEngine: transformers' own ``generate()`` behind tirl's engine interface.

The baseline tirl's engine is measured against (``tirl bench rollout``), and a fallback that
needs nothing but a causal LM: each micro-batch is left-padded and handed to ``generate`` with
sampling, stop strings and its KV cache. Rows of a micro-batch share one sampling setting
(the first request's; the agent loop's requests differ only in their token budgets, which are
applied per row afterwards).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tirl.engine.base import Completion, Engine, FinishReason, GenerationRequest
from tirl.engine.stops import StopChecker


class HFGenerateEngine(Engine):
    def __init__(self, model, tokenizer, max_batch: int = 64, seed: int = 0, bf16: bool | None = None):
        from tirl.engine.device import resolve_bf16

        self.bf16 = resolve_bf16(bf16)  # auto: bf16 autocast where the CPU has native bf16 matmuls
        self.model = model
        self.tokenizer = tokenizer
        self.max_context = int(getattr(model.config, "max_position_embeddings", 2048))
        self.max_batch = max_batch
        eos = model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos if eos is not None else tokenizer.eos_token_id])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.tokens_generated = 0
        torch.manual_seed(seed)  # generate() draws from the global RNG: no generator of its own, requests' seeds are ignored

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].prefix_ids))
        out: list[Completion | None] = [None] * len(requests)
        for start in range(0, len(order), self.max_batch):
            chunk = order[start : start + self.max_batch]
            for i, c in zip(chunk, self._batch([requests[i] for i in chunk])):
                out[i] = c
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def _batch(self, reqs: list[GenerationRequest]) -> list[Completion]:
        sp = reqs[0].sampling
        L = max(len(r.prefix_ids) for r in reqs)
        ids = torch.full((len(reqs), L), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, r in enumerate(reqs):
            ids[b, L - len(r.prefix_ids) :] = torch.tensor(r.prefix_ids)
            mask[b, L - len(r.prefix_ids) :] = 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            res = self._generate(ids, mask, reqs, sp)
        new = res.sequences[:, L:]
        logits = torch.stack(res.logits, dim=1).float() / (sp.temperature if sp.temperature > 0 else 1.0)
        logp = torch.log_softmax(logits, dim=-1)
        ent = -(logp.exp() * logp).sum(-1)
        out = []
        for b, r in enumerate(reqs):
            checker = StopChecker(self.tokenizer, r.sampling.stop_strings)
            toks: list[int] = []
            finish, hit = FinishReason.LENGTH, None
            for t in new[b].tolist():
                toks.append(t)
                if t in self.eos_ids or t in r.sampling.stop_token_ids:
                    finish = FinishReason.EOS
                    break
                if (hit := checker.find(toks)) is not None:
                    finish = FinishReason.STOP_STRING
                    break
                if len(toks) >= r.sampling.max_new_tokens:
                    break
            n = len(toks)
            lp = logp[b, torch.arange(n), torch.tensor(toks)].tolist()
            out.append(Completion(toks, lp, ent[b, :n].tolist(), finish, hit))
            self.tokens_generated += n
        return out

    def _generate(self, ids, mask, reqs, sp):
        kw = dict(do_sample=True, temperature=sp.temperature, top_p=sp.top_p, top_k=sp.top_k or None) if sp.temperature > 0 else dict(do_sample=False)
        return self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max(r.sampling.max_new_tokens for r in reqs),
            stop_strings=list(sp.stop_strings) or None,
            tokenizer=self.tokenizer,
            pad_token_id=self.pad_id,
            return_dict_in_generate=True,
            output_logits=True,
            **kw,
        )
