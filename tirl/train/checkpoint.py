"""Atomic, resumable checkpoints: model, optimiser, scheduler, RNG and trainer state.

Layout (DESIGN.md, "Runs on disk")::

    run_dir/checkpoints/step_000120/
        model/              model.save_pretrained(): full weights, or only the adapter of a PEFT model
        optimizer.pt        optimizer.state_dict()      (when an optimiser is given)
        scheduler.pt        scheduler.state_dict()      (when a scheduler is given)
        rng.pt              tirl.train.rng.capture_rng()
        trainer_state.json  {"step": ..., anything JSON the trainer passes (data position, ...)}
        COMPLETE            manifest of the files above; written last

An FSDP run (``cluster.parallel=fsdp``) writes ``shards/`` instead of ``model/`` and
``optimizer.pt``: every rank's shards of the model and the optimiser state, written by
``torch.distributed.checkpoint`` (``tirl.train.fsdp``), and read back into a sharded model.

Atomicity: a checkpoint is built in a temporary sibling directory (``.tmp-step_000120-*``),
every file is fsynced, ``COMPLETE`` is written last, and only then is the directory renamed
into place with ``os.replace`` (atomic on POSIX) and the parent directory fsynced. So a crash
at any moment leaves either no ``step_*`` directory or a complete one; temporary directories
are ignored by ``latest_checkpoint`` and removed by the next save. Old checkpoints are pruned
by renaming them to a temporary name first, so a crash mid-delete never leaves a half-deleted
directory that looks complete.

One writer per run directory (rank 0 in a distributed run; under FSDP the other ranks write
their shards into the directory rank 0 hands them, see ``write_shards``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_model

from tirl.errors import UserError
from tirl.train.rng import capture_rng, restore_rng

if TYPE_CHECKING:
    from tirl.train.fsdp import ShardedModel

CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"
MODEL_DIR = "model"
SHARDS_DIR = "shards"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
RNG = "rng.pt"
TRAINER_STATE = "trainer_state.json"
TMP_PREFIX = ".tmp-"
_STEP_DIR = re.compile(r"step_(\d+)")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is incomplete, inconsistent, or does not fit the objects it is loaded into."""


def step_dir(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step_{step:06d}"


def _is_peft(model: Any) -> bool:
    # A PEFT model can only exist if peft was imported; checking sys.modules avoids importing it.
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


# -- durability helpers -------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # platforms that cannot open directories (Windows): nothing to sync
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(Path(dirpath) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


def _write_text(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _discard(path: Path) -> None:
    """Remove a directory without ever leaving a partly deleted ``step_*`` behind: rename first."""
    doomed = path.with_name(f"{TMP_PREFIX}delete-{path.name}-{os.getpid()}")
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


# -- listing ------------------------------------------------------------------------------------


def _is_complete(path: Path) -> bool:
    return path.is_dir() and _STEP_DIR.fullmatch(path.name) is not None and (path / COMPLETE).is_file()


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run, oldest step first (incomplete and temporary dirs ignored)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _is_complete(p)]
    return sorted(found, key=lambda p: int(_STEP_DIR.fullmatch(p.name).group(1)))


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _remove_stale_temps(root: Path) -> None:
    """Leftovers of crashed saves and prunes (never complete checkpoints: those have step_* names)."""
    for p in root.iterdir():
        if not p.name.startswith(TMP_PREFIX):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


# -- save -----------------------------------------------------------------------------------------


def _save_model(model: Any, path: Path) -> None:
    if hasattr(model, "save_pretrained"):
        kwargs = {}
        if not _is_peft(model):
            import inspect

            # transformers >= 5 renames some weights on save ("original format"); keep the names
            # the live model uses so the checkpoint loads back key for key.
            if "save_original_format" in inspect.signature(model.save_pretrained).parameters:
                kwargs["save_original_format"] = False
        model.save_pretrained(path, **kwargs)
    else:  # a plain torch module
        path.mkdir(parents=True)
        save_model(model, str(path / "model.safetensors"))
    if not any(path.glob("*.safetensors")):
        raise CheckpointError(f"saving the model wrote no .safetensors file into {path}")


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    *,
    model: Any,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    trainer_state: Mapping[str, Any],
    rng_extra: Mapping[str, torch.Generator] | None = None,
    keep_last: int | None = 3,
    write_shards: Callable[[Path], None] | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically and prune to the newest ``keep_last`` (None: keep all).

    ``write_shards`` (FSDP): called with the directory the model's and optimiser's shards go
    into, in place of saving ``model`` and ``optimizer`` (rank 0 hands the directory to the other
    ranks and writes its own shards; the checkpoint completes after all have written).

    ``trainer_state`` must be JSON-serialisable; ``step`` is stored with it. Saving a step that
    already exists replaces it (a crash during that replacement loses that step, never an
    older one). The checkpoint just written is never pruned, even when older than others.
    Returns the checkpoint directory.
    """
    if step < 0:
        raise ValueError(f"checkpoint step must be >= 0, got {step}")
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 (or None to keep all), got {keep_last}")
    if "step" in trainer_state and trainer_state["step"] != step:
        raise ValueError(f"trainer_state['step'] = {trainer_state['step']!r} disagrees with step = {step}")
    try:
        state_json = json.dumps({**trainer_state, "step": step}, indent=2, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"trainer_state must be JSON-serialisable: {e}") from e

    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(root)
    final = step_dir(run_dir, step)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}-", dir=root))
    try:
        if write_shards is not None:
            (tmp / SHARDS_DIR).mkdir()
            write_shards(tmp / SHARDS_DIR)
            files = [str(p.relative_to(tmp)) for p in sorted((tmp / SHARDS_DIR).rglob("*")) if p.is_file()]
            if not files:
                raise CheckpointError(f"writing the shards wrote nothing into {tmp / SHARDS_DIR}")
        else:
            _save_model(model, tmp / MODEL_DIR)
            files = [str(p.relative_to(tmp)) for p in sorted((tmp / MODEL_DIR).rglob("*")) if p.is_file()]
        if optimizer is not None and write_shards is None:
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER)
            files.append(OPTIMIZER)
        if scheduler is not None:
            torch.save(scheduler.state_dict(), tmp / SCHEDULER)
            files.append(SCHEDULER)
        torch.save(capture_rng(rng_extra), tmp / RNG)
        _write_text(tmp / TRAINER_STATE, state_json)
        files += [RNG, TRAINER_STATE]
        _fsync_tree(tmp)
        _write_text(tmp / COMPLETE, json.dumps({"step": step, "files": files}, indent=2))
        _fsync_dir(tmp)
        if final.exists():
            _discard(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep_last is not None:
        others = [p for p in list_checkpoints(run_dir) if p != final]  # oldest first
        for old in others[: max(len(others) - (keep_last - 1), 0)]:
            _discard(old)
        _fsync_dir(root)
    return final


# -- load -----------------------------------------------------------------------------------------


def _manifest(ckpt_dir: Path) -> dict:
    if not ckpt_dir.exists():
        raise FileNotFoundError(f"checkpoint directory {ckpt_dir} does not exist")
    if not ckpt_dir.is_dir():
        raise CheckpointError(f"checkpoint path {ckpt_dir} is not a directory")
    marker = ckpt_dir / COMPLETE
    if not marker.is_file():
        raise CheckpointError(f"checkpoint {ckpt_dir} is incomplete: no {COMPLETE} marker (the save did not finish)")
    try:
        manifest = json.loads(marker.read_text())
        files = list(manifest["files"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {ckpt_dir}: unreadable {COMPLETE} manifest ({e})") from e
    missing = [f for f in files if not (ckpt_dir / f).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {ckpt_dir} is incomplete: missing {', '.join(missing)}")
    return manifest


def _read_safetensors(model_dir: Path, prefix: str) -> dict[str, torch.Tensor]:
    """Every tensor of the ``{prefix}*.safetensors`` files in ``model_dir`` (sharded or not)."""
    shards = sorted(model_dir.glob(f"{prefix}*.safetensors"))
    if not shards:
        raise CheckpointError(f"no {prefix}*.safetensors file in {model_dir}")
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        try:
            state.update(load_file(shard, device="cpu"))
        except Exception as e:  # noqa: BLE001 - safetensors' own error types; re-raised with the file named
            raise CheckpointError(f"cannot read {shard}: {type(e).__name__}: {e}") from e
    return state


def _load_full_model(model: torch.nn.Module, model_dir: Path) -> None:
    """Load saved weights into ``model`` in place, with strict key checking. A key may be absent
    from the file only when its tensor is tied to (shares storage with) one that is present."""
    saved = _read_safetensors(model_dir, "model")
    own = model.state_dict()
    unexpected = sorted(set(saved) - set(own))
    loaded_ptrs = {own[k].data_ptr() for k in saved if k in own}
    missing = sorted(k for k in set(own) - set(saved) if own[k].data_ptr() not in loaded_ptrs)
    if unexpected or missing:
        raise CheckpointError(
            f"weights in {model_dir} do not match the model: "
            f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''} "
            f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    for k, v in saved.items():
        if own[k].shape != v.shape:
            raise CheckpointError(f"{model_dir}: {k} has shape {tuple(v.shape)}, the model's is {tuple(own[k].shape)}")
    model.load_state_dict(saved, strict=False)


def _load_peft_model(model: Any, model_dir: Path) -> None:
    """Load every adapter of a PEFT model (the default one from ``model_dir``, others from the
    sub-directories ``save_pretrained`` puts them in) with strict key checking."""
    from peft.utils import (
        get_peft_model_state_dict,
        load_peft_weights,
        set_peft_model_state_dict,
    )

    for name in model.peft_config:
        adapter_dir = model_dir if name == "default" else model_dir / name
        if not any(adapter_dir.glob("adapter_model*.safetensors")):
            raise CheckpointError(f"no adapter_model.safetensors for adapter {name!r} in {adapter_dir}")
        try:
            saved = load_peft_weights(str(adapter_dir), device="cpu")
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"cannot read the adapter in {adapter_dir}: {type(e).__name__}: {e}") from e
        expected = set(get_peft_model_state_dict(model, adapter_name=name))
        missing, unexpected = sorted(expected - set(saved)), sorted(set(saved) - expected)
        if missing or unexpected:
            raise CheckpointError(f"adapter {name!r} in {adapter_dir} does not match the model: missing {missing[:5]} unexpected {unexpected[:5]}")
        result = set_peft_model_state_dict(model, saved, adapter_name=name)
        if getattr(result, "unexpected_keys", None):
            raise CheckpointError(f"adapter {name!r} in {adapter_dir}: unexpected keys {result.unexpected_keys[:5]}")


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise CheckpointError(f"cannot read {path}: {type(e).__name__}: {e}") from e


def load_checkpoint(
    ckpt_dir: str | os.PathLike,
    *,
    model: Any,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    rng_extra: Mapping[str, torch.Generator] | None = None,
    sharded: ShardedModel | None = None,
) -> dict[str, Any]:
    """Restore a checkpoint in place and return its trainer state (a dict with ``step``).

    The model's weights (or a PEFT model's adapters) are loaded into ``model``; the optimiser,
    scheduler and RNG states are restored when given. Asking for an optimiser or scheduler state
    the checkpoint does not hold is an error; leaving them out (e.g. to evaluate) is not.
    ``sharded`` (FSDP, every rank calls it): the model is sharded, the checkpoint must hold shards.
    """
    ckpt_dir = Path(ckpt_dir)
    _manifest(ckpt_dir)
    has_shards = (ckpt_dir / SHARDS_DIR).is_dir()
    if has_shards != (sharded is not None):
        raise CheckpointError(
            f"checkpoint {ckpt_dir} holds "
            + (
                "FSDP shards: resume it with cluster.parallel=fsdp"
                if has_shards
                else "a whole model: resume it with cluster.parallel=ddp (or one process)"
            )
        )
    for obj, name in ((optimizer, OPTIMIZER), (scheduler, SCHEDULER)):
        if obj is not None and not (ckpt_dir / name).is_file() and not (has_shards and name == OPTIMIZER):
            raise CheckpointError(f"checkpoint {ckpt_dir} has no {name}, but a {name.removesuffix('.pt')} was given to restore")
    model_dir = ckpt_dir / MODEL_DIR
    if sharded is not None:
        try:
            sharded.load(ckpt_dir / SHARDS_DIR, optimizer)
        except Exception as e:  # noqa: BLE001 - torch.distributed.checkpoint's own errors, re-raised with the checkpoint named
            raise CheckpointError(f"cannot read the shards of {ckpt_dir}: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
        optimizer = None  # restored with the shards
    elif _is_peft(model):
        _load_peft_model(model, model_dir)
    else:
        _load_full_model(model, model_dir)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(_torch_load(ckpt_dir / OPTIMIZER))
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{ckpt_dir / OPTIMIZER} does not fit the optimizer: {e}") from e
    if scheduler is not None:
        scheduler.load_state_dict(_torch_load(ckpt_dir / SCHEDULER))
    restore_rng(_torch_load(ckpt_dir / RNG), rng_extra)
    return json.loads((ckpt_dir / TRAINER_STATE).read_text())
