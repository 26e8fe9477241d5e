"""Teacher forcing through the live policy model, without gradient: per-token entropies of given
id sequences. E3-TIR scores the anchor candidates of an expert trajectory with it
(``tirl.rollout.e3.EntropyScorer``; ALGORITHMS.md §5); the rollout layer sees only that
interface, never the model."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tirl.train.logprobs import token_logprobs


class TeacherForcingScorer:
    def __init__(self, model, pad_id: int, micro_batch_size: int, bf16: bool | None):
        """``model``: the policy being trained (read at each call, so the scores are the current
        weights'); sequences run ``micro_batch_size`` at a time, right-padded with ``pad_id``."""
        self.model, self.pad_id, self.micro_batch_size, self.bf16 = model, pad_id, micro_batch_size, bf16

    def entropies(self, seqs: Sequence[Sequence[int]], starts: Sequence[Sequence[int]]) -> list[list[float]]:
        """Per sequence, the policy's per-token entropies (index t: the distribution predicting
        token t), scored from the earliest start of its micro-batch on (0 before it); an empty
        list for every sequence of a micro-batch that has no start at all."""
        out: list[list[float]] = []
        with torch.no_grad():
            for i in range(0, len(seqs), self.micro_batch_size):
                chunk = seqs[i : i + self.micro_batch_size]
                T = max(len(x) for x in chunk)
                first = min((s for st in starts[i : i + self.micro_batch_size] for s in st), default=T)
                if first >= T:
                    out += [[] for _ in chunk]
                    continue
                ids_BT = torch.full((len(chunk), T), self.pad_id, dtype=torch.long)
                attn_BT = torch.zeros((len(chunk), T), dtype=torch.long)
                for b, x in enumerate(chunk):
                    ids_BT[b, : len(x)] = torch.tensor(x)
                    attn_BT[b, : len(x)] = 1
                _, ent_BT = token_logprobs(self.model, ids_BT, attn_BT, with_entropy=True, bf16=self.bf16, first=first)
                out += [ent_BT[b, : len(x)].tolist() for b, x in enumerate(chunk)]
        return out
