"""The whole GRPO loop for a tool-using agent, readable in one file.

tirl's reference loop: no config tree, checkpoints, micro-batching or asyncio; every piece on
the page. It is a checked twin of the trainer (``tirl.train.rl_trainer``, ``flat`` strategy,
default ``algo``/``optim``): ``tests/test_minimal.py`` checks that its tool loop builds the
agent loop's trajectories and that its update equals ``policy_update`` on the same batch.

    python -m tirl.train.minimal --model tiny-random --steps 2
    python -m tirl.train.minimal --model smollm2-135m-instruct --steps 20 --lr 2e-6

Per step, for ``tasks`` arith problems and ``group`` samples each:
  1. roll out (``sample``): generate → parse the call → run it → append the observation
     tokens → repeat; tool tokens are in the context, never trained;
  2. reward: +1 correct, 0 wrong, -1 when the answer format is broken (ALGORITHMS.md §1);
  3. drop infrastructure failures, then GRPO advantages per group (``group_advantages``);
  4. loss: PPO-clip on policy tokens, token_mean over the batch (``policy_step``);
  5. AdamW step; log reward, accuracy, tool calls, loss, entropy.

Tensor axes are name suffixes (``tirl.types``): ``_B`` rows, ``_G`` group, ``_T`` tokens, ``_V`` vocabulary.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from tirl.engine import HFEngine, HFEngineConfig
from tirl.engine.base import FinishReason, GenerationRequest, SamplingParams
from tirl.engine.device import cpu_has_fast_bf16
from tirl.models import load_model
from tirl.protocol import TagProtocol
from tirl.rewards.compose import apply_rewards
from tirl.rewards.presets import default_rewards
from tirl.rollout.masks import loss_mask
from tirl.tasks import load_tasks
from tirl.tools import PythonSandbox, SandboxConfig
from tirl.types import Origin, Segment, Step, StopReason, Trajectory


@dataclass
class Args:
    model: str = "tiny-random"  # alias or directory
    steps: int = 2  # optimiser steps
    tasks: int = 4  # tasks per step
    group: int = 4  # samples per task (the GRPO group)
    lr: float = 2e-6
    clip: float = 0.2  # PPO clip range (symmetric; inert with one epoch, see policy_step)
    max_tokens: int = 128  # token budget after the prompt, policy and tool tokens together
    max_tool_calls: int = 4  # a further call stops the trajectory (stop reason tool_cap)
    difficulty: int = 1
    seed: int = 0
    out: str = "runs/minimal"


def sample(engine, protocol: TagProtocol, sandbox: PythonSandbox, tasks, args: Args) -> list[list[Trajectory]]:
    """``args.group`` trajectories per task, token in, token out (docs/DESIGN.md invariant 2): the
    engine's sampled ids are a POLICY segment (trained), the observation text tokenised here a
    TOOL segment (in the context, never trained). ``tirl.rollout.agent_loop`` adds concurrency,
    seeds, branching, the context-window stop (prompt + max_tokens must fit) and void turns."""
    tok, stops = engine.tokenizer, protocol.stop_strings()
    trajs = [Trajectory(task.id, g, protocol.prompt_ids(tok, task), gold=task.answer) for task in tasks for g in range(args.group)]
    session = {id(t): f"{t.task_id}/{t.sample}/{uuid.uuid4().hex[:8]}" for t in trajs}  # its own interpreter state
    live = trajs
    while live:
        # one batched generation: every live trajectory's exact ids so far, up to the rest of its budget
        requests = [
            GenerationRequest(t.token_ids, SamplingParams(max_new_tokens=args.max_tokens - len(t.completion_ids), stop_strings=stops)) for t in live
        ]
        for t, c in zip(live, engine.generate(requests)):
            t.segments.append(Segment(Origin.POLICY, c.token_ids, c.logprobs, c.entropy))
            action = len(t.segments) - 1
            turn = protocol.parse_turn(tok.decode(c.token_ids, skip_special_tokens=False), ended_by_eos=c.finish_reason is FinishReason.EOS)
            if turn.call is None or t.n_tool_calls >= args.max_tool_calls:
                t.steps.append(Step(action))
                if turn.call is not None:  # a call beyond the cap is not run (ALGORITHMS.md §1)
                    t.stop_reason = StopReason.TOOL_CAP
                elif turn.final:  # an answer closed by its stop tag, or an EOS without one
                    t.answer = turn.answer
                    closed = c.finish_reason is FinishReason.STOP_STRING or protocol.final_turn_ends_with_eos
                    t.stop_reason = StopReason.ANSWER if closed and turn.answer is not None else StopReason.EOS
                else:  # neither a call nor an answer: the turn ran out of tokens
                    t.stop_reason = StopReason.LENGTH
                continue
            # as the agent loop's _run_call: a malformed call gets the protocol's error text; the
            # model's errors and timeouts are observations; the sandbox's own failures set infra_error
            call = turn.call
            obs = protocol.error_observation(call) if call.error else sandbox.run_sync(call.arguments["code"], session[id(t)])
            obs_ids = tok(protocol.observation_text(call, obs), add_special_tokens=False)["input_ids"]
            t.segments.append(Segment(Origin.TOOL, list(obs_ids)))
            t.steps.append(Step(action, call, obs, action + 1))
            if obs.infra_error:  # the sandbox failed, not the model: dropped in group_advantages
                t.stop_reason = StopReason.ERROR
            elif len(t.completion_ids) >= args.max_tokens:
                t.stop_reason = StopReason.LENGTH
        live = [t for t in live if t.stop_reason is None]
    for t in trajs:  # what the agent loop's finalize derives (the text is for reading and rewards only)
        sandbox.close_session_sync(session[id(t)])
        t.text = tok.decode(t.completion_ids, skip_special_tokens=False)
        if t.answer is None:  # no closed answer: the last \boxed{} of the model's own turns
            t.answer = protocol.extract_answer(
                "".join(tok.decode(s.token_ids, skip_special_tokens=False) for s in t.segments if s.origin is Origin.POLICY)
            )
    return [trajs[i : i + args.group] for i in range(0, len(trajs), args.group)]


def group_advantages(groups: list[list[Trajectory]], eps: float = 1e-6) -> tuple[list[Trajectory], torch.Tensor]:
    """GRPO (Shao et al. 2024, Eq. 3; ALGORITHMS.md §1): A_i = (R_i - mean R) / (std R + eps) over
    the group, population std. As in the trainer, infrastructure failures (stop reason error) are
    dropped *before* the statistics, never scored as 0 (DESIGN.md invariant 5; the trainer's
    ``tirl.rollout.tree.build_tree``), and a group left with < 2 samples is dropped (``sample_batch``)."""
    kept, adv = [], []
    for group in groups:
        live = [t for t in group if t.stop_reason is not StopReason.ERROR]
        if len(live) < 2:
            continue
        reward_G = torch.tensor([t.reward for t in live], dtype=torch.float64)
        adv.append((reward_G - reward_G.mean()) / (reward_G.std(unbiased=False) + eps))
        kept += live
    return kept, (torch.cat(adv) if adv else torch.zeros(0)).float()


def batch_tensors(trajs: list[Trajectory], adv_B: torch.Tensor, pad_id: int):
    """Right-padded ids, attention mask, loss mask (policy tokens only) and per-token advantage."""
    B, T = len(trajs), max((len(t.token_ids) for t in trajs), default=1)
    ids_BT = torch.full((B, T), pad_id)
    attn_BT, mask_BT, adv_BT = torch.zeros(B, T, dtype=torch.long), torch.zeros(B, T), torch.zeros(B, T)
    for b, t in enumerate(trajs):
        n = len(t.token_ids)
        ids_BT[b, :n] = torch.tensor(t.token_ids)
        attn_BT[b, :n] = 1
        mask_BT[b, :n] = torch.tensor(loss_mask(t), dtype=torch.float)  # the one function that decides
        adv_BT[b, :n] = adv_B[b]
    return ids_BT, attn_BT, mask_BT, adv_BT


def policy_step(model, opt, trajs: list[Trajectory], adv_B: torch.Tensor, pad_id: int, clip: float, bf16: bool) -> dict:
    """One optimiser step: ``policy_update`` with the trainer's defaults (ppo_clip, token_mean, one
    epoch, no KL, gradient norm clipped at 1) in one forward pass instead of micro-batches."""
    ids_BT, attn_BT, mask_BT, adv_BT = batch_tensors(trajs, adv_B, pad_id)
    if mask_BT.sum() == 0:  # nothing to train: the trainer takes no step either
        return {"loss": 0.0, "entropy": 0.0, "grad_norm": 0.0, "tokens": 0}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # fp32 where bf16 is emulated
        logits_BTV = model(input_ids=ids_BT, attention_mask=attn_BT).logits[:, :-1].float()
    logp_BTV = torch.log_softmax(logits_BTV, -1)
    logp_BT = logp_BTV.gather(-1, ids_BT[:, 1:, None]).squeeze(-1)  # log p(token t+1 | tokens <= t)
    mask_BT, adv_BT = mask_BT[:, 1:], adv_BT[:, 1:]  # aligned with the token each position predicts
    # PPO-clip (ALGORITHMS.md §1, "Per-token loss"; Schulman et al. 2017, Eq. 7). With one
    # optimisation epoch per batch the old log-probs come from the same weights (they are these,
    # detached), so the ratio is always exactly 1 and the clip never binds: the gradient is
    # -A ∇logp. The clip is the trainer's loss; it acts only with algo.ppo_epochs > 1.
    ratio_BT = torch.exp(logp_BT - logp_BT.detach())
    loss_BT = -torch.minimum(ratio_BT * adv_BT, ratio_BT.clamp(1 - clip, 1 + clip) * adv_BT)
    n_tokens = mask_BT.sum()
    loss = (loss_BT * mask_BT).sum() / n_tokens  # token_mean: every trained token of the batch weighs the same
    opt.zero_grad()
    loss.backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    opt.step()
    with torch.no_grad():
        entropy = float((-(logp_BTV.exp() * logp_BTV).sum(-1) * mask_BT).sum() / n_tokens)
    return {"loss": float(loss.detach()), "entropy": entropy, "grad_norm": grad_norm, "tokens": int(n_tokens)}


def main(args: Args) -> list[dict]:
    torch.manual_seed(args.seed)
    lm = load_model(args.model)
    model, tok = lm.model, lm.tokenizer
    engine = HFEngine(model, tok, HFEngineConfig(seed=args.seed))  # samples from the live weights
    tasks = load_tasks("arith", n=args.steps * args.tasks, seed=args.seed, split="train", difficulty=args.difficulty)
    # the trainer's optimiser defaults (OptimConfig: no weight decay, betas 0.9/0.99)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    (out := Path(args.out)).mkdir(parents=True, exist_ok=True)
    history = []
    with PythonSandbox(SandboxConfig(workers=2)) as sandbox:
        protocol = TagProtocol([sandbox])
        rewards = default_rewards(protocol)
        for step in range(args.steps):
            t0 = time.perf_counter()
            batch = tasks[step * args.tasks : (step + 1) * args.tasks]
            model.eval()
            groups = sample(engine, protocol, sandbox, batch, args)  # 1. roll out
            apply_rewards(list(zip(batch, groups)), rewards)  # 2. score (infrastructure failures are not scored)
            trajs, adv_B = group_advantages(groups)  # 3. drop failures, group-relative advantages
            model.train()
            stats = policy_step(model, opt, trajs, adv_B, tok.pad_token_id, args.clip, cpu_has_fast_bf16())  # 4.-5.
            n = max(len(trajs), 1)
            row = {
                "step": step + 1,
                "reward": sum(t.reward for t in trajs) / n,
                "accuracy": sum(t.rewards.get("correct", 0.0) for t in trajs) / n,
                "tool_calls": sum(t.n_tool_calls for t in trajs) / n,
                "infra_dropped": sum(t.stop_reason is StopReason.ERROR for g in groups for t in g),
                **stats,
                "seconds": time.perf_counter() - t0,
            }
            history.append(row)
            print(json.dumps(row), flush=True)
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
    return history


def parse_args(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in vars(Args()).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return Args(**vars(p.parse_args(argv)))


if __name__ == "__main__":
    main(parse_args())
