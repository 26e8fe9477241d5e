"""Resolve a run directory to the model it produced (``RUN/final_model``, written at the end of
training with its tokenizer; LoRA adapters merged)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tirl.errors import UserError


class UnfinishedRun(UserError, FileNotFoundError):
    """A run directory given as a model before its training wrote final_model."""


def resolve_eval_model(name: str) -> str:
    p = Path(name)
    if (p / "config.yaml").exists():
        final = p / "final_model"
        if (final / "config.json").exists():
            return str(final)
        raise UnfinishedRun(f"run {p} has no final_model yet (training has not finished); resume it with: tirl train --resume {p}")
    return name


def export_final_model(policy, tokenizer, run_dir: Path, model=None) -> Path:
    """Write the trained weights as a plain transformers directory (merging a LoRA adapter into
    a copy of the base weights) so ``tirl eval --model RUN`` and ``model.name=RUN`` load it.
    ``model``: the module holding the whole weights when it is not ``policy.model`` (FSDP:
    rank 0's full replica)."""
    import copy

    out = run_dir / "final_model"
    model = policy.model if model is None else model
    if policy.lora:
        model = copy.deepcopy(model).merge_and_unload()
    # Written beside and renamed into place: a reader (tirl eval --model RUN) never sees half a model.
    tmp = run_dir / f".final_model.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        old = run_dir / f".final_model.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    return out
