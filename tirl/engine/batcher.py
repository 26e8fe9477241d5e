"""Continuous batching over a slot KV cache, with prefix forking.

Up to ``max_batch`` rows decode together; a row that finishes leaves at once and a waiting
request takes its slot (after a prefill of its own), so the batch stays full until the queue
runs dry. Rows live in slots ``0..R-1``: a finished row's slot is refilled by moving the last
row into it, so decoding always reads one contiguous block of the cache.

Prefix forking. Requests are admitted in lexicographic order of their prefixes, so those that
share a prefix (the G samples of a group, the branches of a tree) arrive together: the first
is prefilled, the rest copy its keys and values and prefill only what differs (nothing at all
when the prefixes are identical: its last logits are copied too). A finished row's keys and
values go into the ``PrefixStore``, so the next turn of a trajectory (its prefix plus the
sampled turn plus the tool result) prefills only the tool result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from tirl.engine.base import Completion, FinishReason, GenerationRequest
from tirl.engine.llama_fast import FastLlama, KVCache
from tirl.engine.prefix_store import BLOCK, PrefixStore, common_prefix
from tirl.engine.sampling import sample_tokens
from tirl.engine.stops import StopChecker
from tirl.engine.threads import ThreadTuner


@dataclass
class _Row:
    index: object  # the caller's ticket for this request
    req: GenerationRequest
    ids: list[int]  # tokens whose keys/values are (or are being put) in the slot
    budget: int
    stop_ids: set[int]
    checker: StopChecker
    gen: torch.Generator | None = None  # this row's sampling stream (from its request's seed)
    source_entry: int | None = None
    length: int = 0  # positions of the slot holding valid keys/values
    tokens: list[int] = field(default_factory=list)
    logps: list[float] = field(default_factory=list)
    ents: list[float] = field(default_factory=list)
    finish: FinishReason | None = None
    stop_string: str | None = None


@dataclass
class BatcherStats:
    prefill_tokens: int = 0  # tokens run through prefill
    prefix_tokens_reused: int = 0  # prefix tokens whose keys/values were copied instead of computed
    prefix_tokens_recomputed: int = 0  # prefill tokens in blocks the engine had computed before
    decode_steps: int = 0
    tokens_generated: int = 0
    decode_threads: int = 0  # threads of the last decode step (chosen by the ThreadTuner)


class ContinuousBatcher:
    def __init__(
        self,
        fast: FastLlama,
        tokenizer,
        eos_ids: Sequence[int],
        max_batch: int,
        prefill_chunk: int,
        prefix_cache_bytes: int,
        generator: torch.Generator,
        decode_threads: int = 0,
    ):
        self.fast = fast
        self.tokenizer = tokenizer
        self.eos_ids = set(eos_ids)
        self.max_batch = max_batch
        self.prefill_chunk = prefill_chunk
        self.generator = generator
        self.store = PrefixStore(prefix_cache_bytes)
        self.kv: KVCache | None = None
        self.stats = BatcherStats()
        self.tuner = ThreadTuner.for_config(decode_threads)
        self.pending: list[tuple[object, GenerationRequest]] = []
        self.rows: list[_Row] = []
        self.logits_RV = torch.empty(0, fast.vocab)

    def reset_cache(self) -> None:
        """Forget all stored keys/values (the weights changed)."""
        self.store.clear()

    # -- the loop ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return bool(self.pending or self.rows)

    def submit(self, req: GenerationRequest, ticket: object) -> None:
        if not req.prefix_ids:
            raise ValueError("a generation request needs a non-empty prefix")
        if len(req.prefix_ids) >= self.fast.max_positions:
            raise ValueError(f"prefix of {len(req.prefix_ids)} tokens does not fit the model's context of {self.fast.max_positions}")
        self.pending.append((ticket, req))

    @torch.no_grad()
    def step(self) -> list[tuple[object, Completion]]:
        """Admit waiting requests into free slots, sample one token for every row, retire the
        rows that finished, decode the rest. Returns the finished (ticket, completion) pairs."""
        if self.pending and len(self.rows) < self.max_batch:
            # sorted by prefix, so requests that share one are admitted side by side
            self.pending.sort(key=lambda tr: tr[1].prefix_ids)
            k = self.max_batch - len(self.rows)
            taken, self.pending = self.pending[:k], self.pending[k:]
            new = [self._new_row(t, r) for t, r in taken]
            self.logits_RV = torch.cat([self.logits_RV, self._admit(self.rows, new)])
            self.rows.extend(new)
        if not self.rows:
            return []
        self._sample(self.rows, self.logits_RV)
        finished = []
        for slot, r in enumerate(self.rows):
            if r.finish is not None:
                finished.append((r.index, Completion(r.tokens, r.logps, r.ents, r.finish, r.stop_string)))
                self._retire(slot, r)
        self.rows = self._compact(self.rows)
        self.logits_RV = self._decode(self.rows) if self.rows else torch.empty(0, self.fast.vocab)
        return finished

    def abort(self) -> list[object]:
        """Drop every request in flight (after an error); returns their tickets."""
        tickets = [t for t, _ in self.pending] + [r.index for r in self.rows]
        self.pending, self.rows = [], []
        self.logits_RV = torch.empty(0, self.fast.vocab)
        return tickets

    def run(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """All ``requests`` to completion (the synchronous interface)."""
        if self.busy:
            raise RuntimeError("the engine is already generating (asynchronous requests in flight)")
        for i, r in enumerate(requests):
            self.submit(r, i)
        out: list[Completion | None] = [None] * len(requests)
        try:
            while self.busy:
                for i, c in self.step():
                    out[i] = c
        except BaseException:
            self.abort()
            raise
        return out  # type: ignore[return-value]

    def _new_row(self, ticket: object, req: GenerationRequest) -> _Row:
        budget = min(req.sampling.max_new_tokens, self.fast.max_positions - len(req.prefix_ids))
        # a request with a seed samples from its own stream, whatever else shares the batch;
        # without one the stream is seeded from the engine's generator at admission
        seed = req.seed if req.seed is not None else int(torch.randint(0, 2**62, (1,), generator=self.generator))
        return _Row(
            index=ticket,
            req=req,
            ids=list(req.prefix_ids),
            budget=budget,
            stop_ids=self.eos_ids | set(req.sampling.stop_token_ids),
            checker=StopChecker(self.tokenizer, req.sampling.stop_strings),
            gen=torch.Generator().manual_seed(seed),
        )

    # -- admission: prefix reuse and prefill -----------------------------------------------------
    def _admit(self, rows: list[_Row], new: list[_Row]) -> torch.Tensor:
        first = len(rows)
        need = max(len(r.ids) + r.budget for r in new)
        if self.kv is None:
            f = self.fast
            self.kv = KVCache(f.n_layers, self.max_batch, f.n_kv, f.head_dim, need, dtype=f.dtype)
        self.kv.ensure(need + 1)
        # Each new row takes the longest prefix it can: from a row admitted just before it (new
        # rows are in sorted order, so the longest shared prefix is with the previous row; among
        # the run of rows sharing that much, the shallowest is used) or from the prefix store.
        # Rows are then computed in phases by depth: a row copies its source's keys/values
        # (its source sits one phase earlier) and prefills only the rest; an identical prefix
        # also copies the last logits and computes nothing.
        B = len(new)
        depth, source, shared = [0] * B, [-1] * B, [0] * B
        adjacent = [0] + [common_prefix(new[j - 1].ids, new[j].ids) for j in range(1, B)]
        cached = [0] * B
        for j, r in enumerate(new):
            n = adjacent[j]
            if j and (n >= BLOCK or n == len(r.ids)):
                k, best = j - 1, j - 1
                while k >= 1 and adjacent[k] >= n:
                    k -= 1
                    best = k if depth[k] < depth[best] else best
                source[j], shared[j], depth[j] = best, n, depth[best] + 1
            eid, stored = self.store.lookup(r.ids)
            if stored > shared[j] and min(stored, len(r.ids) - 1) > 0:
                source[j], shared[j], depth[j] = -1, 0, 0
                cached[j] = min(stored, len(r.ids) - 1)
                self.kv.load(first + j, self.store.get(eid).kv, cached[j])
                r.source_entry = eid
                self.stats.prefix_tokens_reused += cached[j]
        logits = torch.empty(B, self.fast.vocab)
        for d in range(max(depth) + 1):
            todo: list[tuple[int, _Row, int]] = []
            for j, r in enumerate(new):
                if depth[j] != d:
                    continue
                if source[j] < 0:
                    todo.append((first + j, r, cached[j]))
                    continue
                src = new[source[j]]
                if shared[j] == len(r.ids) == len(src.ids):  # identical prefix: nothing to compute
                    self.kv.copy_row(first + source[j], first + j, shared[j])
                    r.length = shared[j]
                    logits[j] = logits[source[j]]
                    self.stats.prefix_tokens_reused += shared[j]
                else:
                    n = min(shared[j], len(r.ids) - 1)
                    self.kv.copy_row(first + source[j], first + j, n)
                    self.stats.prefix_tokens_reused += n
                    todo.append((first + j, r, n))
            for s, row_logits in self._prefill(todo).items():
                logits[s - first] = row_logits
        # keep the prompt of the last new row for requests still waiting that share it
        nxt = self.pending[0][1].prefix_ids if self.pending else None
        if nxt is not None and self.store.max_bytes > 0 and common_prefix(new[-1].ids, nxt) >= BLOCK:
            self.store.add(list(new[-1].ids), self.kv.export(first + B - 1, len(new[-1].ids)))
        return logits

    def _prefill(self, items: list[tuple[int, _Row, int]]) -> dict[int, torch.Tensor]:
        """Compute keys/values of ``row.ids[cached:]`` for each (slot, row, cached); return the
        logits of each row's last prefix token. Rows of similar suffix length share a forward
        pass of at most ``prefill_chunk`` tokens; a longer suffix is split into column chunks."""
        out: dict[int, torch.Tensor] = {}
        items = sorted(items, key=lambda x: len(x[1].ids) - x[2])
        i = 0
        while i < len(items):
            n_max = len(items[i][1].ids) - items[i][2]  # widths ascend: the last member is the widest
            group = [items[i]]
            while i + len(group) < len(items):
                cand = items[i + len(group)]
                width = len(cand[1].ids) - cand[2]
                if width * (len(group) + 1) > self.prefill_chunk:
                    break
                group.append(cand)
                n_max = width
            i += len(group)
            for _s, r, cached in group:
                self.stats.prefix_tokens_recomputed += self.store.recomputed(r.ids, cached)
                self.stats.prefill_tokens += len(r.ids) - cached
            cols = max(1, self.prefill_chunk // len(group))
            start = 0
            while start < n_max:
                end = min(n_max, start + cols)
                logits = self._forward_cols(group, start, end)
                for (s, r, cached), lg in zip(group, logits):
                    if start <= len(r.ids) - cached - 1 < end:
                        out[s] = lg
                start = end
            for _s, r, _ in group:
                r.length = len(r.ids)
                self.store.mark_seen(r.ids)
        return out

    def _forward_cols(self, group, start: int, end: int) -> torch.Tensor:
        """Columns ``start:end`` of each row's uncached suffix (rows shorter than that are padded)."""
        cap = self.kv.capacity
        R, N = len(group), end - start
        ids = torch.full((R, N), 0, dtype=torch.long)
        pos = torch.empty((R, N), dtype=torch.long)
        length = torch.empty(R, dtype=torch.long)
        last = torch.zeros(R, dtype=torch.long)
        for b, (_s, r, cached) in enumerate(group):
            suffix = r.ids[cached + start : cached + end]
            ids[b, : len(suffix)] = torch.tensor(suffix, dtype=torch.long) if suffix else ids[b, :0]
            # padding sits past the row's length (masked, overwritten later by decoding)
            pos[b] = torch.arange(cached + start, cached + start + N).clamp(max=cap - 1)
            length[b] = min(len(r.ids), cached + end)
            last[b] = max(0, min(N, len(suffix)) - 1)
        rows = torch.tensor([s for s, _, _ in group], dtype=torch.long)
        # a small prefill (one tool result) is as thread-sensitive as a decode step
        with self.tuner.use(self.tuner.best if R * N <= 256 else torch.get_num_threads()):
            return self.fast.forward(ids, pos, rows, length, self.kv, last)

    # -- decoding -------------------------------------------------------------------------------
    def _decode(self, rows: list[_Row]) -> torch.Tensor:
        R = len(rows)
        ids = torch.tensor([[r.tokens[-1]] for r in rows], dtype=torch.long)
        pos = torch.tensor([[r.length] for r in rows], dtype=torch.long)
        for r in rows:
            r.ids.append(r.tokens[-1])
            r.length += 1
        length = pos[:, 0] + 1
        self.stats.decode_steps += 1
        threads = self.tuner.next_threads()
        t0 = time.perf_counter()
        with self.tuner.use(threads):
            logits = self.fast.forward(ids, pos, torch.arange(R), length, self.kv, torch.zeros(R, dtype=torch.long))
        self.tuner.record(threads, time.perf_counter() - t0)
        self.stats.decode_threads = threads
        return logits

    def _sample(self, rows: list[_Row], logits_RV: torch.Tensor) -> None:
        sp = [r.req.sampling for r in rows]
        s = sample_tokens(
            logits_RV,
            torch.tensor([p.temperature for p in sp], dtype=torch.float32),
            torch.tensor([p.top_k for p in sp], dtype=torch.long),
            torch.tensor([p.top_p for p in sp], dtype=torch.float32),
            uniform_B=torch.cat([torch.rand(1, generator=r.gen, dtype=torch.float64) for r in rows]),
        )
        toks, lps, ents = s.token_B.tolist(), s.logprob_B.tolist(), s.entropy_B.tolist()
        for r, t, lp, en in zip(rows, toks, lps, ents):
            r.tokens.append(t)
            r.logps.append(lp)
            r.ents.append(en)
            if t in r.stop_ids:
                r.finish = FinishReason.EOS
            elif (hit := r.checker.find(r.tokens)) is not None:
                r.finish, r.stop_string = FinishReason.STOP_STRING, hit
            elif len(r.tokens) >= r.budget:
                r.finish = FinishReason.LENGTH
        self.stats.tokens_generated += len(rows)

    def _retire(self, slot: int, r: _Row) -> None:
        """Keep a finished row's keys/values for a request that extends it (the next turn)."""
        if self.store.max_bytes > 0 and r.length > 0:
            self.store.add(r.ids[: r.length], self.kv.export(slot, r.length), replaces=r.source_entry)

    def _compact(self, rows: list[_Row]) -> list[_Row]:
        """Drop finished rows; move the last live rows into the freed slots (rows stay 0..R-1)."""
        n_live = sum(r.finish is None for r in rows)
        if n_live == len(rows):
            return rows
        # Fill each freed slot below n_live with a live row from the tail: one KV copy per
        # finished row. (A stable compaction would shift every row after a finished one, which
        # copies most of the cache each time a trajectory leaves for a tool call.) Row order
        # does not matter: every row samples from its own generator.
        out = list(rows)
        holes = [s for s in range(n_live) if rows[s].finish is not None]
        movers = [s for s in range(n_live, len(rows)) if rows[s].finish is None]
        for hole, src in zip(holes, movers):
            self.kv.copy_row(src, hole, rows[src].length)
            out[hole] = rows[src]
        return out[:n_live]
