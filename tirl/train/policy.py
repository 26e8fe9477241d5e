"""The trainable policy: the model (full or LoRA), its frozen KL reference, optimiser and schedule."""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch.autograd.graph import increment_version

from tirl.config import Config
from tirl.models import load_model
from tirl.train.resolve import resolve_eval_model

if TYPE_CHECKING:
    from tirl.train.fsdp import ShardedModel
    from tirl.train.parallel import DataParallel


def build_model(cfg: Config):
    """The policy's model (with its LoRA adapter when configured) and tokenizer, as loaded for
    training; a Ray rollout worker builds the same and receives the trained weights."""
    lm = load_model(resolve_eval_model(cfg.model.name))
    model = lm.model
    if cfg.model.lora.enabled:
        from peft import LoraConfig, get_peft_model

        from tirl.models.peft_quiet import quiet_peft

        lc = cfg.model.lora
        with quiet_peft():
            model = get_peft_model(
                model, LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=lc.target_modules, task_type="CAUSAL_LM")
            )
    return model, lm.tokenizer


class Policy:
    """Owns the model being trained. ``reference()`` is a context in which ``self.model`` computes
    reference log-probs: with LoRA the adapter is disabled (free), otherwise a frozen copy is used.

    In a data-parallel run (``dp``, ``tirl.train.parallel``) every rank builds its Policy and
    starts from rank 0's weights; under FSDP (``cluster.parallel=fsdp``) ``model`` is then
    sharded (``sharded``, ``tirl.train.fsdp``) and rank 0 samples from a full replica that
    ``after_update`` refreshes."""

    def __init__(self, cfg: Config, dp: DataParallel | None = None):
        model, self.tokenizer = build_model(cfg)
        self.lora = cfg.model.lora.enabled
        self.model = model
        self.model.train()
        self._ref = None
        if cfg.algo.kl_coef > 0 and not self.lora:
            self._ref = copy.deepcopy(model).eval()
            for p in self._ref.parameters():
                p.requires_grad_(False)
        self.sharded: ShardedModel | None = None
        self._sampling_replica = None
        if dp is not None:
            dp.broadcast_parameters(self.model)  # every rank starts from rank 0's weights
            if dp.fsdp:
                from tirl.train.fsdp import ShardedModel

                if dp.is_main:
                    self._sampling_replica = copy.deepcopy(self.model).eval().requires_grad_(False)
                self.sharded = ShardedModel(self.model)

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    @contextmanager
    def reference(self):
        """Yield the module that computes reference log-probs."""
        if self._ref is not None:
            yield self._ref
        elif self.lora:
            with self.model.disable_adapter():
                yield self.model
        else:
            raise RuntimeError("no reference model: set algo.kl_coef > 0 when building the policy")

    def generation_model(self):
        """The module the engine samples from: the live weights, so updates are visible at once
        (FSDP: rank 0's full replica, refreshed by ``after_update``)."""
        return self._sampling_replica if self._sampling_replica is not None else self.model

    def after_update(self) -> None:
        """After an optimiser step or a restore: FSDP gathers the full weights into rank 0's
        sampling replica (every rank must call it); nothing otherwise."""
        if self.sharded is not None:
            self.sharded.gather_into(self._sampling_replica)


def make_optimizer(params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999)) -> torch.optim.Optimizer:
    """AdamW, fused where torch has the kernel for the parameters' device and dtype: one pass
    over all parameters instead of a loop of small ops per tensor (108M parameters in SmolLM2's
    shapes on one CPU thread: 0.19 s against 0.91 s per step). Same update rule and state layout, so checkpoints load either way."""
    params = list(params)
    try:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas), fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    # The fused kernel writes the parameters without bumping their version counters, which is how
    # the engines notice new weights (tirl.engine.llama_fast.weight_version): bump them here, or
    # the engine would keep sampling from the weights it copied last.
    opt.register_step_post_hook(_bump_versions)
    return opt


def _bump_versions(opt: torch.optim.Optimizer, args, kwargs) -> None:
    for group in opt.param_groups:
        for p in group["params"]:
            increment_version(p)


def make_scheduler(opt: torch.optim.Optimizer, schedule: str, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then constant / linear decay / cosine decay to 0 at ``total`` steps."""

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant" or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
