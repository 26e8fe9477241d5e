"""PEFT reads ``model.is_gradient_checkpointing``, which transformers 5 deprecates with a
FutureWarning printed on every LoRA wrap (``tirl rm train``, LoRA runs). The warning is about
PEFT's code, not the user's, so tirl silences that one message around its PEFT calls."""

from __future__ import annotations

import contextlib
import warnings


@contextlib.contextmanager
def quiet_peft():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
