"""Activation checkpointing of the passes that back-propagate (``optim.activation_checkpointing``).

A training forward keeps every layer's intermediate tensors for the backward pass: for
SmolLM2-135M about 2 MB per token run (attention scores and probabilities, the MLP's
1,536-wide activations), which is what bounds a pass's size (docs/BENCHMARKS.md). With
checkpointing each decoder layer keeps only its input; the backward pass runs the layer's
forward again, one layer at a time, to get the rest (Chen et al. 2016, "Training Deep Nets with
Sublinear Memory Cost", arXiv 1604.06174; ``torch.utils.checkpoint``, non-reentrant). The
gradients are those of the plain pass (the recomputation repeats the same operations under the
same autocast state); the cost is one more forward pass per update.

The layers' key/value cache must give the same answer when a layer runs twice. The passes
here use ``ReplayableCache``: while recording (a shared prompt's pass) it stores a layer's
keys/values the first time the layer runs and hands the recomputation its own tensors without
storing them again; its frozen copy (``frozen_rows``, for the rows' pass on top of the prompt)
returns the stored prompt's keys/values joined with the new ones and stores nothing, so every
call is the same.
transformers' own switch (``gradient_checkpointing_enable``) drops any cache a layer is given,
which would lose the shared prompt; the wrapper here checkpoints each layer's ``forward``
itself instead.
"""

from __future__ import annotations

import contextlib

import torch
from torch.utils.checkpoint import checkpoint
from transformers import DynamicCache


class ReplayableCache(DynamicCache):
    """A key/value cache that a layer may call twice with the same result (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = False
        self._recorded: set[int] = set()

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        if self.frozen:
            layer = self.layers[layer_idx]
            return torch.cat([layer.keys, key_states], dim=-2), torch.cat([layer.values, value_states], dim=-2)
        if layer_idx in self._recorded:  # the backward pass recomputing this layer
            return key_states, value_states
        self._recorded.add(layer_idx)
        return super().update(key_states, value_states, layer_idx, *args, **kwargs)

    def frozen_rows(self, index_B: torch.Tensor) -> ReplayableCache:
        """A frozen cache holding row ``b`` = this cache's row ``index_B[b]`` (a group's prompt per
        row). A new object: this one must keep answering its own layers' recomputation."""
        out = ReplayableCache()
        for i, layer in enumerate(self.layers):
            DynamicCache.update(out, layer.keys[index_B], layer.values[index_B], i)
        out.frozen = True
        return out


def decoder_layers(model) -> torch.nn.ModuleList | None:
    """The model's stack of decoder layers (the first ModuleList named ``layers``), or None."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] == "layers" and len(module):
            return module
    return None


@contextlib.contextmanager
def checkpointed_layers(model, enabled: bool = True):
    """Within the block, each decoder layer's forward runs under activation checkpointing
    whenever gradients are being recorded (no-grad passes run as usual)."""
    layers = decoder_layers(model) if enabled else None
    if enabled and layers is None:
        raise ValueError("optim.activation_checkpointing: this model has no decoder layer stack named 'layers' to checkpoint")
    if not layers:
        yield
        return
    for layer in layers:
        original = layer.forward

        def forward(*args, _original=original, **kwargs):
            if torch.is_grad_enabled():
                return checkpoint(_original, *args, use_reentrant=False, **kwargs)
            return _original(*args, **kwargs)

        layer.forward = forward  # an instance attribute: nn.Module.__call__ finds it first
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward  # the class's forward again
