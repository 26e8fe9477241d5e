"""Capture and restore every random number generator a training run draws from.

A resumed run must sample the same rollouts, shuffle the same data and drop the same dropout
units as an uninterrupted one. That needs Python's ``random``, NumPy's global generator,
torch's CPU generator, the CUDA generators when CUDA is in use, and any named
``torch.Generator`` the run owns (the engine's sampling generator, a data loader's) captured
together and restored together.

The state is built only from ints, lists and tensors, so ``torch.load(..., weights_only=True)``
reads it back (no pickled NumPy objects).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (a run's start)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng(extra: Mapping[str, torch.Generator] | None = None) -> dict:
    """The states of the global generators and of the named ``extra`` generators."""
    py_version, py_state, py_gauss = random.getstate()
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state = {
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        # Only the CUDA generators of a machine that has CUDA: restoring them elsewhere is skipped with a warning.
        "cuda": [s.cpu() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "extra": {name: g.get_state() for name, g in (extra or {}).items()},
    }
    return state


def restore_rng(state: Mapping, extra: Mapping[str, torch.Generator] | None = None) -> None:
    """Put every generator back to ``state`` (from ``capture_rng``).

    Each named generator in ``extra`` must have a saved state (KeyError naming the saved ones
    otherwise); saved generators the caller does not pass are ignored.
    """
    saved_extra = state.get("extra", {})
    missing = [name for name in (extra or {}) if name not in saved_extra]
    if missing:
        raise KeyError(f"no saved RNG state for generator(s) {', '.join(map(repr, missing))}; saved: {', '.join(map(repr, saved_extra)) or 'none'}")
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = state["numpy"]
    keys = np.asarray(npst["keys"].numpy() if isinstance(npst["keys"], torch.Tensor) else npst["keys"], dtype=np.uint32)
    np.random.set_state((npst["kind"], keys, npst["pos"], npst["has_gauss"], npst["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda", [])
    if cuda:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all(cuda)
        else:
            warnings.warn(
                f"the saved RNG state has {len(cuda)} CUDA generator(s) but this process sees "
                f"{torch.cuda.device_count() if torch.cuda.is_available() else 0}; CUDA generators not restored",
                stacklevel=2,
            )
    for name, g in (extra or {}).items():
        g.set_state(saved_extra[name])
