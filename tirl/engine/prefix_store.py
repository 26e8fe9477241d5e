"""Keys and values of finished sequences, kept so a later request that extends them (the next
turn of a trajectory after its tool result, a branch from a step of a tree) prefills only its
new tokens.

Entries are looked up by chained hashes of fixed-size token blocks (the scheme of vLLM's
automatic prefix caching), then the match is extended token by token. Memory is bounded: the
least recently used entries are dropped first. Every entry is stale once the weights change;
the engine clears the store then.

``seen`` remembers block hashes the engine has computed since the last clear, even after their
entry was dropped, so prefill work on an already computed prefix is counted as *recomputed*.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

BLOCK = 16


def block_hashes(ids: Sequence[int]) -> list[int]:
    """Hash of every full block prefix: ``h[k]`` identifies ``ids[: (k + 1) * BLOCK]``."""
    out, h = [], 0
    for k in range(len(ids) // BLOCK):
        h = hash((h, tuple(ids[k * BLOCK : (k + 1) * BLOCK])))
        out.append(h)
    return out


def common_prefix(a: Sequence[int], b: Sequence[int], start: int = 0) -> int:
    n = min(len(a), len(b))
    i = start
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class Entry:
    ids: list[int]  # the tokens whose keys/values ``kv`` holds
    kv: torch.Tensor  # (layers, 2, kv_heads, len(ids), head_dim)
    hashes: list[int]


class PrefixStore:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[int, Entry] = OrderedDict()  # LRU order, oldest first
        self.by_hash: dict[int, set[int]] = {}  # block-prefix hash -> entries holding that prefix
        self.seen: set[int] = set()
        self.nbytes = 0
        self.peak_nbytes = 0  # the most held at once (the engine resets it, see HFEngine.memory)
        self._next = 0

    def clear(self) -> None:
        self.entries.clear()
        self.by_hash.clear()
        self.seen.clear()
        self.nbytes = 0

    def lookup(self, ids: Sequence[int]) -> tuple[int | None, int]:
        """(entry id, matched tokens) of the stored sequence sharing the longest prefix with ``ids``."""
        best, depth = None, 0
        for k, h in enumerate(block_hashes(ids)):
            holders = self.by_hash.get(h)
            if not holders:
                break
            best, depth = max(holders), k + 1  # the newest entry that holds this prefix
        if best is None:
            return None, 0
        entry = self.entries[best]
        n = depth * BLOCK
        if entry.ids[:n] != list(ids[:n]):  # a hash collision: no match
            return None, 0
        self.entries.move_to_end(best)
        return best, common_prefix(entry.ids, ids, n)

    def add(self, ids: list[int], kv: torch.Tensor, replaces: int | None = None) -> None:
        """Store ``kv`` for ``ids``; ``replaces`` names an entry that ``ids`` extends (it is dropped)."""
        if replaces is not None and replaces in self.entries and ids[: len(self.entries[replaces].ids)] == self.entries[replaces].ids:
            self._drop(replaces)
        size = kv.numel() * kv.element_size()
        if size > self.max_bytes:
            return
        while self.nbytes + size > self.max_bytes and self.entries:
            self._drop(next(iter(self.entries)))
        eid, self._next = self._next, self._next + 1
        hashes = block_hashes(ids)
        self.entries[eid] = Entry(ids=list(ids), kv=kv, hashes=hashes)
        for h in hashes:
            self.by_hash.setdefault(h, set()).add(eid)
        self.seen.update(hashes)
        self.nbytes += size
        self.peak_nbytes = max(self.peak_nbytes, self.nbytes)

    def get(self, eid: int) -> Entry:
        return self.entries[eid]

    def _drop(self, eid: int) -> None:
        e = self.entries.pop(eid)
        self.nbytes -= e.kv.numel() * e.kv.element_size()
        for h in e.hashes:
            holders = self.by_hash.get(h)
            if holders is not None:
                holders.discard(eid)
                if not holders:
                    del self.by_hash[h]

    def recomputed(self, ids: Sequence[int], start: int) -> int:
        """Tokens of ``ids[start:]`` in full blocks the engine computed before (since the last clear)."""
        return sum(BLOCK for k, h in enumerate(block_hashes(ids)) if (k + 1) * BLOCK > start and h in self.seen and k * BLOCK >= start)

    def mark_seen(self, ids: Sequence[int]) -> None:
        self.seen.update(block_hashes(ids))
