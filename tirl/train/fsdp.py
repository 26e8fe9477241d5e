"""FSDP2 for the policy update: ``torch.distributed.fsdp.fully_shard`` on every decoder layer and
on the whole model, and checkpoints written as shards with ``torch.distributed.checkpoint``.

Each rank keeps 1/world of every parameter, gradient and optimiser state; a layer's parameters
are all-gathered for its forward and backward and its gradients reduce-scattered after the
backward. FSDP averages gradients over the ranks by default; tirl's losses already divide by the
whole batch's counts (``tirl.algo.aggregate``), so the divide factor is set to 1 and the shards'
gradients are sums, the same gradient DDP's all-reduce gives (``tirl.train.parallel``).

Sampling needs the whole model: rank 0 keeps a plain replica for its engine and, after every
optimiser step, ``gather_into`` all-gathers the full weights into it (every rank takes part).
That is the weight sync of an FSDP run; it costs one full copy on rank 0, as a rollout engine
on its own device would.

Checkpoints: ``save`` writes each rank's shards of the model and the optimiser state into one
directory (every rank calls it with the same directory, rank 0 writes the metadata), ``load``
reads them back into the sharded model and optimiser (tested with the same number of ranks).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_state_dict, set_state_dict
from torch.distributed.fsdp import fully_shard


def _layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The decoder layers (each its own FSDP unit, so one layer's full weights exist at a time)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else base
    layers = getattr(decoder, "layers", None)
    return list(layers) if layers is not None else [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]


class ShardedModel:
    """A model sharded over the ranks with FSDP2, and its sharded checkpoints."""

    def __init__(self, model: torch.nn.Module):
        units = _layers(model) + [model]
        for unit in units:
            fully_shard(unit)
        for unit in units:  # each unit reduces its own gradients
            unit.set_gradient_divide_factor(1.0)  # sums: the loss already divides by the whole batch's counts
            unit.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no pre-multiplied sum)
        self.model = model

    def gather_into(self, target: torch.nn.Module | None) -> None:
        """All-gather the full weights (every rank calls it) into ``target`` (rank 0's sampling
        replica; None on the other ranks)."""
        full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if target is not None:
            target.load_state_dict(full)

    def save(self, directory: Path, optimizer: torch.optim.Optimizer) -> None:
        """This rank's shards of the model and optimiser state into ``directory`` (every rank)."""
        model_sd, optim_sd = get_state_dict(self.model, optimizer)
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(directory))

    def load(self, directory: Path, optimizer: torch.optim.Optimizer | None) -> None:
        """Restore the shards in ``directory`` (every rank) into the model and optimiser."""
        if optimizer is None:
            state = {"model": get_model_state_dict(self.model)}
            dcp.load(state, checkpoint_id=str(directory))
            set_state_dict(self.model, [], model_state_dict=state["model"], optim_state_dict={})
            return
        model_sd, optim_sd = get_state_dict(self.model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=str(directory))
        set_state_dict(self.model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
