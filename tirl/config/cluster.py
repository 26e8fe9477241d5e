"""The ``cluster`` section: where rollouts and the update run (docs/SCALING.md).

The default (``scheduler: inline``, one trainer process) is tirl's single-process run, step for
step and bit for bit: no field of this section changes anything until it is set. Scaling the
same run out changes this section only:

- ``scheduler: ray``: rollout workers are Ray actors, each owning an engine, a sandbox pool, the
  tools and the reward functions; a driver runs generate -> train -> push weights
  (``tirl.cluster``);
- ``train_world_size`` > 1: the update runs data-parallel with ``torch.distributed`` (``parallel``:
  DDP or FSDP2). Under ``torchrun`` the launcher's world size is used (no flag needed); under
  Ray the driver starts that many trainer ranks itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tirl.config.base import Section

WeightSync = Literal["inproc", "object_store", "disk"]


class ClusterConfig(Section):
    scheduler: Literal["inline", "ray"] = "inline"
    """inline: rollouts and the update in this process (the default, tirl's single-process
    run); ray: rollouts on ``rollout_workers`` Ray actors, the update in the driver."""
    rollout_workers: int = Field(1, ge=1)
    """Ray rollout actors (scheduler=ray). A step's tasks are split between them by task, so a
    task's whole tree (ARPO, ELPO, E3-TIR) is sampled on one worker."""
    train_world_size: int = Field(1, ge=1)
    """Trainer ranks of the update. Under torchrun the launcher's WORLD_SIZE is used (this field
    may stay 1, or must equal it); under Ray the driver starts this many trainer processes."""
    parallel: Literal["ddp", "fsdp"] = "ddp"
    """How the update is split when train_world_size > 1. ddp: every rank holds the model, rows
    are sharded by token count, gradients all-reduced (gloo on CPU, nccl on CUDA); fsdp: FSDP2
    (``torch.distributed.fsdp.fully_shard``): parameters, gradients and optimiser state sharded,
    checkpoints written as shards (``torch.distributed.checkpoint``)."""
    weight_sync: WeightSync | None = None
    """How rollout workers receive the weights after an optimiser step. inproc: the engine
    samples from the trainer's own model (inline only); object_store: the changed parameters go
    through Ray's object store; disk: a safetensors file in the run directory (workers on other
    machines need a shared filesystem). None: inproc inline, object_store under Ray. A GPU build
    plugs an NCCL broadcast in at ``tirl.cluster.weight_sync.WEIGHT_SYNCS``."""
    max_staleness: int = Field(0, ge=0)
    """Optimiser steps a trained rollout may lag the policy being updated. 0: strictly
    on-policy (every rollout comes from the current weights). k > 0: under Ray, rollouts of the
    next k steps are generated while this step trains, and the update weights each policy token
    by the truncated importance ratio pi_prox / pi_behaviour (decoupled PPO; docs/ALGORITHMS.md
    §10); rollouts older than k steps are never trained."""
    is_cap: float = Field(2.0, ge=1.0)
    """Truncation of the behaviour importance weight when max_staleness > 0 (truncated IS:
    weights above it are cut to it)."""
    ray_address: str | None = None
    """An existing Ray cluster to join (``auto``, ``ray://host:10001``, ``host:6379``); None
    starts a local one (``ray.init``) for the run."""
    ray_num_cpus: int | None = Field(None, ge=1)
    """CPUs of a local Ray cluster; None: the machine's."""
    ray_object_store_mb: int | None = Field(None, ge=75)
    """Object-store memory of a local Ray cluster (MB); None: Ray's default (30% of RAM). The
    object_store weight sync needs room for one copy of the trained parameters."""
    worker_cpus: float = Field(1.0, gt=0)
    """CPUs Ray reserves for each rollout actor."""
    worker_gpus: float = Field(0.0, ge=0)
    """GPUs Ray reserves for each rollout actor (a vLLM engine, ``engine.backend=vllm``, on a GPU
    node: 1, or a fraction to share one)."""
    max_restarts: int = Field(3, ge=0)
    """Times Ray restarts a rollout actor that died (killed, out of memory); its unfinished
    tasks are resubmitted to the restarted actor."""
    restart_timeout_s: float = Field(600.0, gt=0)
    """How long the driver waits for Ray to restart a dead rollout actor (it rebuilds its engine
    and tools) before moving its tasks to another worker."""
    dist_timeout_s: float = Field(7200.0, gt=0)
    """Timeout of torch.distributed collectives (seconds). Under torchrun the other ranks wait
    in one while rank 0 samples, so it must exceed a step's rollout time."""

    @model_validator(mode="after")
    def _consistent(self) -> ClusterConfig:
        if self.scheduler == "inline":
            if self.rollout_workers != 1:
                raise ValueError(f"cluster.rollout_workers={self.rollout_workers} needs cluster.scheduler=ray (inline samples in this process)")
            if self.weight_sync not in (None, "inproc"):
                raise ValueError(f"cluster.weight_sync={self.weight_sync} needs cluster.scheduler=ray (inline samples from the trained model itself)")
        elif self.weight_sync == "inproc":
            raise ValueError(
                "cluster.weight_sync=inproc needs cluster.scheduler=inline (Ray rollout workers are other processes): use object_store or disk"
            )
        return self

    @property
    def sync_mode(self) -> WeightSync:
        """The weight sync in effect (``weight_sync`` with its default resolved)."""
        if self.weight_sync is not None:
            return self.weight_sync
        return "inproc" if self.scheduler == "inline" else "object_store"
