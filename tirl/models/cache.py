"""The keyword under which a transformers model takes and returns its KV cache.

transformers renamed ``past_key_values`` to ``cache`` (the old name still works there, with a
deprecation warning on every process); older releases, such as the one the vLLM environment
pins, only know ``past_key_values``. Detected once from the output dataclass.
"""

from __future__ import annotations

from transformers.modeling_outputs import CausalLMOutputWithPast

CACHE_KW = "cache" if "cache" in getattr(CausalLMOutputWithPast, "__dataclass_fields__", {}) else "past_key_values"


def cache_arg(cache) -> dict:
    """``model(..., **cache_arg(cache))``."""
    return {CACHE_KW: cache}


def returned_cache(out):
    """The cache a forward with ``use_cache=True`` returned."""
    return getattr(out, CACHE_KW)
