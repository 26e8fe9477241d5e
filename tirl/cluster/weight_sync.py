"""Getting the trainer's weights to the rollout workers after an optimiser step
(``cluster.weight_sync``; docs/SCALING.md).

The driver ``publish``es the trained parameters (all of them, or only the LoRA adapter: what
``requires_grad``; frozen weights never change) once per version and hands every worker the
small ``WeightHandle`` it returns; a worker ``fetch``es the tensors and copies them into its own
model in place (``load_into``), and its engine then samples from them (``Engine.sync_weights``).

- ``object_store``: the tensors go into Ray's object store once (as NumPy arrays, which Ray
  stores without copying and workers on the same node map read-only); every worker reads them
  from there. The store must hold one copy of the trained parameters.
- ``disk``: a safetensors file in the run directory (``weights/v000012.safetensors``, written
  atomically, the two newest kept); workers read it. Across machines it needs a shared
  filesystem.
- ``inproc`` is the inline scheduler's: the engine samples from the trained model itself; there
  is nothing to publish.

A GPU build adds an NCCL broadcast here: a ``WeightSync`` whose ``publish`` broadcasts from the
trainer's rank 0 over a process group that includes the workers (the way verl and OpenRLHF feed
vLLM) and whose handle's ``fetch`` receives it; registering it in ``WEIGHT_SYNCS`` (and the
config's ``weight_sync`` choices) is all the driver needs. It is not built here (no GPU).
"""

from __future__ import annotations

import os
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch


def trained_parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters an optimiser step changes, by name (a tied weight once)."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def load_into(model: torch.nn.Module, params: dict[str, Any]) -> int:
    """Copy ``params`` into ``model``'s parameters of the same names, in place (so an engine that
    watches the parameters' version counters sees the change). Returns the bytes copied."""
    own = dict(model.named_parameters())
    missing = sorted(set(params) - set(own))
    if missing:
        raise KeyError(f"the worker's model has no parameters {missing[:5]}: it was not built from the trainer's config")
    n = 0
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only NumPy views of the object store: only read from here
        for name, value in params.items():
            src = torch.as_tensor(value)
            own[name].copy_(src)
            n += src.numel() * src.element_size()
    return n


@dataclass
class WeightHandle:
    """What a worker needs to fetch one version of the weights; small, sent with every push.
    (An object reference is kept inside a list, so Ray hands the handle over as it is instead of
    resolving the reference before the worker can time the transfer.)"""

    version: int
    mode: str
    refs: list = field(default_factory=list)
    path: str | None = None

    def fetch(self) -> dict[str, Any]:
        if self.mode == "object_store":
            import ray

            return ray.get(self.refs[0])
        if self.mode == "disk":
            from safetensors.torch import load_file

            return load_file(self.path)
        raise ValueError(f"no weight sync {self.mode!r}")


class WeightSync(ABC):
    name: ClassVar[str]

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.last_publish_s = 0.0

    def publish(self, params: dict[str, torch.Tensor], version: int) -> WeightHandle:
        """Make ``params`` available to the workers as ``version``."""
        t0 = time.perf_counter()
        handle = self._publish(params, version)
        self.last_publish_s = time.perf_counter() - t0
        return handle

    @abstractmethod
    def _publish(self, params: dict[str, torch.Tensor], version: int) -> WeightHandle: ...

    def close(self) -> None:
        return None


def _numpy_or_tensor(t: torch.Tensor):
    """NumPy where it can hold the dtype (the object store then serves it without copying)."""
    t = t.contiguous().cpu()
    return t.numpy() if t.dtype not in (torch.bfloat16,) else t.clone()


class ObjectStoreSync(WeightSync):
    name = "object_store"

    def __init__(self, run_dir: Path):
        super().__init__(run_dir)
        self._current: list = []  # keeps the newest version in the store (a restarted worker fetches it)

    def _publish(self, params: dict[str, torch.Tensor], version: int) -> WeightHandle:
        import ray

        ref = ray.put({k: _numpy_or_tensor(v) for k, v in params.items()})
        self._current = [ref]
        return WeightHandle(version, self.name, refs=[ref])


class DiskSync(WeightSync):
    name = "disk"
    KEEP = 2

    def _publish(self, params: dict[str, torch.Tensor], version: int) -> WeightHandle:
        from safetensors.torch import save_file

        folder = self.run_dir / "weights"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"v{version:06d}.safetensors"
        tmp = folder / f".tmp-{path.name}-{os.getpid()}"
        save_file({k: v.contiguous().cpu() for k, v in params.items()}, str(tmp))
        os.replace(tmp, path)  # a worker never reads half a file
        for old in sorted(folder.glob("v*.safetensors"))[: -self.KEEP]:
            old.unlink(missing_ok=True)
        return WeightHandle(version, self.name, path=str(path))


WEIGHT_SYNCS: dict[str, type[WeightSync]] = {"object_store": ObjectStoreSync, "disk": DiskSync}
"""Weight syncs by ``cluster.weight_sync`` name (an NCCL broadcast would register here)."""
