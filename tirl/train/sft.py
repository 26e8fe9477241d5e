"""Supervised fine-tuning on trajectories, with the same masks as RL (tool output never trained).

Sources: the reference solvers of ``arith`` and ``lookup`` (their scripted solutions executed
for real with the run's tools, so the observations are genuine) or a rollout JSONL (correct trajectories only by
default). This is the warm-up of the SFT-then-RL baseline and of later recipes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tirl.config import SFTConfig
from tirl.errors import UserError
from tirl.models.attention import Attention, training_attention
from tirl.models.checkpointing import checkpointed_layers
from tirl.protocol.base import Protocol
from tirl.rollout import read_jsonl, script_trajectory
from tirl.rollout.masks import SFT_ORIGINS, loss_mask
from tirl.tasks.reference import check, reference_solution
from tirl.train.logprobs import first_scored_position, token_logprobs
from tirl.train.policy import make_optimizer
from tirl.train.rows import collate
from tirl.train.update import micro_batches
from tirl.types import StopReason, Task, TrainRow, Trajectory


async def reference_trajectories(tasks: list[Task], protocol: Protocol, tokenizer, concurrency: int = 8) -> list[Trajectory]:
    """Execute the reference solver's script of every task; drop any whose execution failed or
    whose check fails (a search that missed its article), so a broken sandbox or index never
    becomes training data."""
    sem = asyncio.Semaphore(concurrency)

    async def one(task: Task) -> Trajectory:
        async with sem:
            return await script_trajectory(task, reference_solution(task), protocol, tokenizer)

    trajs = await asyncio.gather(*(one(t) for t in tasks))
    return [
        tr
        for task, tr in zip(tasks, trajs)
        if tr.stop_reason is StopReason.ANSWER and all(s.observation.ok for s in tr.steps if s.call) and check(task, tr) is None
    ]


def file_trajectories(path: str, all_trajectories: bool = False) -> list[Trajectory]:
    trajs = list(read_jsonl(path))
    if all_trajectories:
        return trajs
    return [t for t in trajs if t.rewards.get("correct", 0.0) >= 1.0 and t.stop_reason is not StopReason.ERROR]


def sft_row(traj: Trajectory) -> TrainRow:
    ids = traj.token_ids
    mask = [float(m) for m in loss_mask(traj, origins=SFT_ORIGINS)]
    zeros = [0.0] * len(ids)
    return TrainRow(ids, mask, zeros, zeros, zeros, zeros, zeros, zeros, traj.task_id, traj.sample)


@dataclass
class SFTStats:
    step: int
    loss: float
    tokens: int
    lr: float
    seconds: float
    total_steps: int = 0  # steps of the whole run (for progress displays)


def run_sft(
    model,
    trajs: list[Trajectory],
    cfg: SFTConfig,
    pad_id: int,
    micro_batch_size: int = 16,
    bf16: bool | None = None,
    seed: int = 0,
    on_step: Callable[[SFTStats], None] | None = None,
    attention: Attention = "auto",
    micro_batch_tokens: int | None = 2560,
    activation_checkpointing: bool = False,
) -> list[SFTStats]:
    """Token-mean NLL over the masked tokens of each batch; AdamW with linear decay.
    ``attention``: the kernel of the training passes (``tirl.models.attention``); a forward runs
    at most ``micro_batch_size`` rows and ``micro_batch_tokens`` padded tokens, with activation
    checkpointing if asked (``tirl.models.checkpointing``)."""
    if not trajs:
        raise UserError("no SFT trajectories (check sft.source and its filter: sft.all_trajectories=false keeps only correct ones)")
    with training_attention(model, attention), checkpointed_layers(model, activation_checkpointing):
        return _run_sft(model, trajs, cfg, pad_id, micro_batch_size, micro_batch_tokens, bf16, seed, on_step)


def _run_sft(
    model, trajs, cfg: SFTConfig, pad_id: int, micro_batch_size: int, micro_batch_tokens: int | None, bf16: bool | None, seed: int, on_step
) -> list[SFTStats]:
    rows = [sft_row(t) for t in trajs]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, lr=cfg.lr)
    steps_per_epoch = (len(rows) + cfg.batch_size - 1) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(total, 1))
    rng = random.Random(seed)
    model.train()
    history: list[SFTStats] = []
    step = 0
    for _ in range(cfg.epochs):
        order = list(range(len(rows)))
        rng.shuffle(order)
        for i in range(0, len(order), cfg.batch_size):
            t0 = time.perf_counter()
            batch = sorted((rows[j] for j in order[i : i + cfg.batch_size]), key=len)  # less padding per micro-batch
            n_tokens = sum(sum(r.loss_mask) for r in batch)
            opt.zero_grad(set_to_none=True)
            total_loss = 0.0
            for mb in micro_batches(batch, micro_batch_size, share_prefix=False, max_tokens=micro_batch_tokens):
                b = collate(mb, pad_id)
                logp, _ = token_logprobs(model, b["ids_BT"], b["attn_BT"], bf16=bf16, first=first_scored_position(b["mask_BT"]))
                loss = -(logp * b["mask_BT"]).sum() / max(n_tokens, 1.0)
                loss.backward()
                total_loss += loss.item()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            lr = sched.get_last_lr()[0]
            sched.step()
            step += 1
            st = SFTStats(step, total_loss, int(n_tokens), lr, time.perf_counter() - t0, total)
            history.append(st)
            if on_step is not None:
                on_step(st)
    model.eval()
    return history
