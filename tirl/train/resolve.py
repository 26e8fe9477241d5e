"""Resolve a run directory to the model it produced (``RUN/final_model``, written at the end of
training with its tokenizer; LoRA adapters merged)."""

from __future__ import annotations

from pathlib import Path


def resolve_eval_model(name: str) -> str:
    p = Path(name)
    if (p / "config.yaml").exists():
        final = p / "final_model"
        if (final / "config.json").exists():
            return str(final)
        raise FileNotFoundError(f"run {p} has no final_model yet (training has not finished); resume it with: tirl train --resume {p}")
    return name


def export_final_model(policy, tokenizer, run_dir: Path) -> Path:
    """Write the trained weights as a plain transformers directory (merging a LoRA adapter into
    a copy of the base weights) so ``tirl eval --model RUN`` and ``model.name=RUN`` load it."""
    import copy

    out = run_dir / "final_model"
    model = policy.model
    if policy.lora:
        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
