"""The whole GRPO loop for a tool-using agent, readable in one file.

This is tirl's reference loop: no config tree, no checkpoints, no micro-batching — just
sample → reward → advantage → loss → step → log, with the pieces spelled out. The full trainer
(``tirl.train.rl_trainer``) does the same with every option; when the two disagree, this file
is the one that is easy to check by eye.

    python -m tirl.train.minimal --model tiny-random --steps 2
    python -m tirl.train.minimal --model smollm2-135m-instruct --steps 20 --lr 2e-6

Per step, for ``tasks`` arith problems and ``group`` samples each:
  1. roll out with the Python tool (tool output is appended as tokens, never trained);
  2. reward: +1 correct, 0 wrong, -1 when the answer format is broken;
  3. GRPO advantage A_i = (R_i - mean_group R) / (std_group R + 1e-6)   (Shao et al. 2024, eq. 3);
  4. loss: PPO-clip on policy tokens, averaged over all policy tokens of the batch (token_mean);
     one optimiser step per batch, so the old policy is the current one and the ratio starts at 1;
  5. AdamW step; log reward, accuracy, tool calls, loss, entropy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tirl.engine import HFEngine, HFEngineConfig
from tirl.engine.device import cpu_has_fast_bf16
from tirl.models import load_model
from tirl.protocol import TagProtocol
from tirl.rewards.compose import apply_rewards
from tirl.rewards.presets import default_rewards
from tirl.rollout import RolloutConfig, loss_mask, rollout
from tirl.tasks import load_tasks
from tirl.tools import PythonSandbox, SandboxConfig
from tirl.types import StopReason, Trajectory


@dataclass
class Args:
    model: str = "tiny-random"
    """Model alias or directory."""
    steps: int = 2
    """Optimiser steps."""
    tasks: int = 4
    """Tasks per step."""
    group: int = 4
    """Samples per task (the GRPO group)."""
    lr: float = 2e-6
    clip: float = 0.2
    """PPO clip range (symmetric)."""
    max_tokens: int = 128
    """Token budget of a trajectory after its prompt."""
    difficulty: int = 1
    seed: int = 0
    out: str = "runs/minimal"


def grpo_advantages(rewards: list[float], group: int) -> list[float]:
    """Group-normalised rewards; population std (ddof 0), eps 1e-6."""
    out = []
    for i in range(0, len(rewards), group):
        r = torch.tensor(rewards[i : i + group])
        out += ((r - r.mean()) / (r.std(unbiased=False) + 1e-6)).tolist()
    return out


def batch_tensors(trajs: list[Trajectory], advs: list[float], pad_id: int):
    """Right-padded ids, attention mask, loss mask (policy tokens only) and per-token advantage."""
    T = max(len(t.token_ids) for t in trajs)
    ids = torch.full((len(trajs), T), pad_id)
    attn = torch.zeros(len(trajs), T)
    mask = torch.zeros(len(trajs), T)
    adv = torch.zeros(len(trajs), T)
    for b, (t, a) in enumerate(zip(trajs, advs)):
        n = len(t.token_ids)
        ids[b, :n] = torch.tensor(t.token_ids)
        attn[b, :n] = 1
        mask[b, :n] = torch.tensor(loss_mask(t), dtype=torch.float)
        adv[b, :n] = a
    return ids, attn, mask, adv


def grpo_loss(model, ids, attn, mask, adv, clip: float):
    """PPO-clip with the current policy as the old one: ratio = exp(logp - logp.detach())."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_fast_bf16()):  # fp32 where bf16 is emulated
        logits = model(input_ids=ids, attention_mask=attn.long()).logits[:, :-1].float()
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, ids[:, 1:, None]).squeeze(-1)  # log p(token t | tokens < t)
    m, a = mask[:, 1:], adv[:, 1:]
    ratio = torch.exp(logp - logp.detach())
    per_token = -torch.minimum(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a)
    loss = (per_token * m).sum() / m.sum().clamp(min=1)
    with torch.no_grad():
        entropy = (-(logp_all.exp() * logp_all).sum(-1) * m).sum() / m.sum().clamp(min=1)
    return loss, float(entropy)


def main(args: Args) -> list[dict]:
    torch.manual_seed(args.seed)
    lm = load_model(args.model)
    model, tok = lm.model, lm.tokenizer
    sandbox = PythonSandbox(SandboxConfig(workers=2))
    protocol = TagProtocol([sandbox])
    engine = HFEngine(model, tok, HFEngineConfig(seed=args.seed))  # samples from the live weights
    rewards = default_rewards(protocol)
    cfg = RolloutConfig(group_size=args.group, max_response_tokens=args.max_tokens, max_turn_tokens=args.max_tokens)
    tasks = load_tasks("arith", n=args.steps * args.tasks, seed=args.seed, split="train", difficulty=args.difficulty)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    history = []
    loop = asyncio.new_event_loop()
    try:
        for step in range(args.steps):
            t0 = time.perf_counter()
            # 1. sample a group of trajectories per task, with the Python tool in the loop
            batch = tasks[step * args.tasks : (step + 1) * args.tasks]
            model.eval()
            groups = loop.run_until_complete(rollout(engine, protocol, batch, cfg))
            # 2. score them (infrastructure failures are never scored, never trained)
            apply_rewards(list(zip(batch, groups)), rewards)
            trajs = [t for g in groups for t in g]
            # 3. group-relative advantages (an errored sample keeps its slot with advantage 0)
            advs = grpo_advantages([t.reward for t in trajs], args.group)
            advs = [0.0 if t.stop_reason is StopReason.ERROR else a for t, a in zip(trajs, advs)]
            # 4. loss on policy tokens only, 5. one optimiser step
            model.train()
            ids, attn, mask, adv = batch_tensors(trajs, advs, tok.pad_token_id)
            loss, entropy = grpo_loss(model, ids, attn, mask, adv, args.clip)
            opt.zero_grad()
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
            opt.step()
            row = {
                "step": step + 1,
                "reward": sum(t.reward for t in trajs) / len(trajs),
                "accuracy": sum(t.rewards.get("correct", 0.0) for t in trajs) / len(trajs),
                "tool_calls": sum(t.n_tool_calls for t in trajs) / len(trajs),
                "loss": float(loss.detach()),
                "entropy": entropy,
                "grad_norm": grad_norm,
                "seconds": time.perf_counter() - t0,
            }
            history.append(row)
            print(json.dumps(row), flush=True)
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
    finally:
        loop.run_until_complete(sandbox.aclose())
        loop.close()
    return history


def parse_args(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in vars(Args()).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return Args(**vars(p.parse_args(argv)))


if __name__ == "__main__":
    main(parse_args())
