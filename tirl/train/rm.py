"""RewardModelTrainer: Bradley-Terry training of the trajectory reward model on preference
pairs (AutoTraj, ALGORITHMS.md §7; loss in ``tirl.algo.preference``), with pairwise accuracy on
a held-out split before and after training.

Each batch scores its chosen and rejected texts in one forward pass (both rendered by
``tirl.rm.model.rm_text``, the rendering used again at RL time), takes the mean BT loss and an
AdamW step on the LoRA adapter and the head. AutoTraj's settings (LoRA r 8, lr 1e-5, 2 epochs)
are the config defaults.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tirl.algo.preference import bradley_terry_loss, pairwise_accuracy
from tirl.models.attention import training_attention
from tirl.rm.model import ScalarHeadModel, build_reward_model, encode, rm_text, save_reward_model
from tirl.rm.pairs import PreferencePair, split_pairs
from tirl.train.policy import make_optimizer


@dataclass
class RMStep:
    step: int
    loss: float
    accuracy: float
    seconds: float


@dataclass
class RMResult:
    n_train: int
    n_val: int
    val_accuracy_before: float | None
    val_accuracy_after: float | None
    val_loss_before: float | None
    val_loss_after: float | None
    history: list[RMStep] = field(default_factory=list)
    out: str | None = None


def pair_scores(model: ScalarHeadModel, tokenizer, pairs: Sequence[PreferencePair], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen_B, rejected_B) scores, computed in one forward pass."""
    texts = [rm_text(tokenizer, p.prompt, p.chosen) for p in pairs] + [rm_text(tokenizer, p.prompt, p.rejected) for p in pairs]
    ids, attn = encode(tokenizer, texts, max_tokens)
    s = model(ids, attn)
    return s[: len(pairs)], s[len(pairs) :]


@torch.no_grad()
def evaluate_pairs(model: ScalarHeadModel, tokenizer, pairs: Sequence[PreferencePair], max_tokens: int, batch_size: int = 8) -> tuple[float, float]:
    """(mean BT loss, pairwise accuracy) over ``pairs``."""
    model.eval()
    cs, rs = [], []
    for i in range(0, len(pairs), batch_size):
        c, r = pair_scores(model, tokenizer, pairs[i : i + batch_size], max_tokens)
        cs.append(c)
        rs.append(r)
    c, r = torch.cat(cs), torch.cat(rs)
    return float(bradley_terry_loss(c, r)), pairwise_accuracy(c, r)


def train_reward_model(
    pairs: Sequence[PreferencePair],
    base: str,
    cfg,
    out: str | Path | None = None,
    seed: int = 0,
    on_step: Callable[[RMStep], None] | None = None,
) -> RMResult:
    """Train on ``pairs`` (``cfg`` is the ``rm`` config section), evaluate on the held-out split,
    save to ``out`` when given."""
    torch.manual_seed(seed)
    train, val = split_pairs(list(pairs), cfg.val_fraction, seed)
    if not train:
        raise ValueError("no training pairs left after the held-out split")
    model, tok = build_reward_model(base, cfg.lora_r, cfg.lora_alpha)
    before = evaluate_pairs(model, tok, val, cfg.max_tokens, cfg.batch_size) if val else (None, None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, lr=cfg.lr)
    rng = random.Random(seed)
    history: list[RMStep] = []
    step = 0
    with training_attention(model.backbone, "auto"):  # grouped/eager on CPU: torch's fused SDPA backward is slow there
        for _ in range(cfg.epochs):
            order = list(range(len(train)))
            rng.shuffle(order)
            for i in range(0, len(order), cfg.batch_size):
                t0 = time.perf_counter()
                model.train()
                batch = [train[j] for j in order[i : i + cfg.batch_size]]
                c, r = pair_scores(model, tok, batch, cfg.max_tokens)
                loss = bradley_terry_loss(c, r)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                step += 1
                st = RMStep(step, loss.item(), pairwise_accuracy(c.detach(), r.detach()), time.perf_counter() - t0)
                history.append(st)
                if on_step is not None:
                    on_step(st)
    after = evaluate_pairs(model, tok, val, cfg.max_tokens, cfg.batch_size) if val else (None, None)
    result = RMResult(len(train), len(val), before[1], after[1], before[0], after[0], history)
    if out is not None:
        meta = {
            "base": base,
            "max_tokens": cfg.max_tokens,
            "lora_r": cfg.lora_r,
            "lora_alpha": cfg.lora_alpha,
            "n_train": len(train),
            "n_val": len(val),
            "val_accuracy": after[1],
            "val_loss": after[0],
        }
        result.out = str(save_reward_model(model, out, meta))
    return result
