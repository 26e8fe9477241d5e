"""Reduce per-token losses to a scalar (ALGORITHMS.md §1, "Aggregation modes").

All modes take the loss of one micro-batch and the *global* counts of the whole optimiser
batch, so gradient accumulation over micro-batches gives the same gradient as one big batch:

- ``token_mean``: sum over all policy tokens of the batch / their count (DAPO; tirl's default).
- ``seq_mean_token_mean``: mean over sequences of each sequence's token mean (original GRPO).
- ``seq_sum_norm``: sum of token losses / (number of sequences * a fixed constant) (Dr. GRPO:
  no length normalisation, so long wrong answers are not favoured).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchCounts:
    n_tokens: float  # policy (mask = 1) tokens in the whole optimiser batch
    n_seqs: float  # sequences with at least one policy token in the whole optimiser batch
    norm_constant: float = 1024.0  # seq_sum_norm's fixed divisor (e.g. the max response length)


AggregateFn = Callable[[torch.Tensor, torch.Tensor, BatchCounts], torch.Tensor]


def token_mean(loss_BT: torch.Tensor, mask_BT: torch.Tensor, c: BatchCounts) -> torch.Tensor:
    return (loss_BT * mask_BT).sum() / max(c.n_tokens, 1.0)


def seq_mean_token_mean(loss_BT: torch.Tensor, mask_BT: torch.Tensor, c: BatchCounts) -> torch.Tensor:
    per_seq_B = (loss_BT * mask_BT).sum(-1) / mask_BT.sum(-1).clamp(min=1)
    return per_seq_B.sum() / max(c.n_seqs, 1.0)


def seq_sum_norm(loss_BT: torch.Tensor, mask_BT: torch.Tensor, c: BatchCounts) -> torch.Tensor:
    return (loss_BT * mask_BT).sum() / (max(c.n_seqs, 1.0) * c.norm_constant)


AGGREGATIONS: dict[str, AggregateFn] = {"token_mean": token_mean, "seq_mean_token_mean": seq_mean_token_mean, "seq_sum_norm": seq_sum_norm}
