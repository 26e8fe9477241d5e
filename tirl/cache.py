"""Root of tirl's on-disk cache (converted models, search indexes, generated corpora):
``$TIRL_CACHE``, default ``~/.cache/tirl``. Imports nothing, so every layer may use it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of tirl's on-disk cache; ``TIRL_CACHE`` overrides it."""
    root = os.environ.get("TIRL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tirl")
    return Path(root)
