"""Data-parallel updates with ``torch.distributed``: the process group, the collectives the update
needs, and how a batch's rows are split between ranks.

The update's aggregation already divides by the *whole* batch's token and sequence counts
(``tirl.algo.aggregate``), so a rank's loss over its share of the rows is exactly its share of
the batch loss, and the sum of the ranks' gradients is the gradient of the whole batch. So:

- ``shard_rows`` splits the rows between ranks by token count (a task's rows stay together, so
  their shared prompt still runs once), greedy longest-first onto the least-loaded rank;
- ``DataParallel.sum`` makes the counts (and the logged statistics) global before the loss;
- under DDP every rank holds the whole model and ``reduce_gradients`` *sums* the ranks'
  gradients (an all-reduce over flat buckets of about 25 MB, DistributedDataParallel's bucket
  size). Unlike wrapping the model in ``DistributedDataParallel`` (which averages, and needs
  every rank to run the same number of synchronised backward passes) it runs once after the
  micro-batches, which may differ in number between ranks whose shards differ;
- under FSDP2 (``tirl.train.fsdp``) the gradients are reduce-scattered by FSDP itself during the
  backward pass (with the divide factor set to 1: summed, not averaged) and every rank runs the
  same number of passes (``pad_passes``), since FSDP's all-gathers are collectives.

Ranks come from the launcher (``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT) or from Ray's trainer actors (``tirl.cluster``), which set the same variables.
Backend: nccl where CUDA is available, gloo on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from tirl.types import TrainRow

BUCKET_BYTES = 25 * 2**20
"""Gradient bytes per all-reduce (DistributedDataParallel's default ``bucket_cap_mb``)."""


@dataclass(frozen=True)
class LaunchEnv:
    """What a torch.distributed launcher told this process."""

    rank: int
    world_size: int
    local_rank: int


def launch_env() -> LaunchEnv | None:
    """This process's place in a ``torchrun`` (or compatible) launch; None when not launched by
    one, or launched alone (WORLD_SIZE 1)."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    env = LaunchEnv(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))
    return env if env.world_size > 1 else None


def init_data_parallel(timeout_s: float, fsdp: bool = False) -> DataParallel:
    """Join the launcher's process group (nccl with CUDA, gloo otherwise)."""
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return DataParallel(fsdp=fsdp)


class DataParallel:
    """The collectives of a data-parallel update, over the default process group."""

    def __init__(self, fsdp: bool = False):
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.fsdp = fsdp
        self.device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def pad_passes(self) -> bool:
        """Every rank must run the same number of forward/backward passes (FSDP's all-gathers
        and reduce-scatters are collectives); DDP's single gradient all-reduce needs no such thing."""
        return self.fsdp

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over the ranks (float64, so counts stay exact)."""
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def max(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t)

    def reduce_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Sum every parameter's gradient over the ranks (DDP). A parameter no rank gave a
        gradient keeps None (the optimiser then skips it, as it would in one process); one
        that only some ranks reached counts zeros for the others."""
        if self.fsdp:
            return  # FSDP reduce-scattered them in the backward pass
        had_T = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=self.device)
        dist.all_reduce(had_T, op=dist.ReduceOp.MAX)
        live = [p for p, h in zip(params, had_T.tolist()) if h]
        for p in live:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        bucket: list[torch.nn.Parameter] = []
        size = 0
        for p in live:
            bucket.append(p)
            size += p.grad.numel() * p.grad.element_size()
            if size >= BUCKET_BYTES:
                self._all_reduce_bucket(bucket)
                bucket, size = [], 0
        if bucket:
            self._all_reduce_bucket(bucket)

    @staticmethod
    def _all_reduce_bucket(params: list[torch.nn.Parameter]) -> None:
        by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
        for p in params:
            by_dtype.setdefault(p.grad.dtype, []).append(p)
        for group in by_dtype.values():
            flat = torch.cat([p.grad.reshape(-1) for p in group])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            offset = 0
            for p in group:
                n = p.grad.numel()
                p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
                offset += n

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (what DistributedDataParallel does when
        it wraps a module), so all ranks start from the same weights."""
        for t in list(module.parameters()) + list(module.buffers()):
            if t.device != self.device:  # gloo on CPU, nccl on the rank's device
                buf = t.detach().to(self.device)
                dist.broadcast(buf, src=0)
                t.data.copy_(buf.to(t.device))
            else:
                dist.broadcast(t.data, src=0)

    def broadcast(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; the others pass None)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def shard_rows(rows: Sequence[TrainRow], world_size: int) -> list[list[TrainRow]]:
    """The rows of each rank: a task's rows together (their shared prompt runs once), tasks
    longest first onto the rank with the fewest tokens so far (ties: the lower rank). Every rank
    computes the same split from the same rows; within a shard rows keep their batch order."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r.task_id or f"\0{i}", []).append(i)  # rows without a task each alone
    order = sorted(groups.values(), key=lambda idx: (-sum(len(rows[i]) for i in idx), idx[0]))
    load = [0] * world_size
    owner = [0] * len(rows)
    for idx in order:
        rank = min(range(world_size), key=lambda k: (load[k], k))
        load[rank] += sum(len(rows[i]) for i in idx)
        for i in idx:
            owner[i] = rank
    return [[r for r, o in zip(rows, owner) if o == k] for k in range(world_size)]
