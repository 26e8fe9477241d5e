"""Run under ``torchrun --nproc_per_node 2`` by test_distributed.py: data-parallel updates on
tiny-random compared with one process. Rank 0 prints one JSON line with what it measured.

Modes:
- ``grads``: one DDP step (SGD, learning rate 1, no clipping, so the update is the gradient)
  on each rank's token-balanced shard against one process's step on the whole batch;
- ``fsdp``: one AdamW step with FSDP2 against the same step with DDP and in one process;
- ``ckpt``: FSDP2: step, save a sharded checkpoint, step again; then a fresh sharded model and
  optimiser load the checkpoint and take the second step again;
- ``all DIR``: the three above in one launch;
- ``train RUN_DIR [overrides...]``: ``tirl train`` itself (the CLI, as ``-m tirl train`` runs it)
  with a reward that varies between samples, so the run really updates the weights.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

from tirl.config import AlgoConfig, OptimConfig
from tirl.models import load_model
from tirl.train.parallel import init_data_parallel, shard_rows
from tirl.train.update import policy_update
from tirl.types import TrainRow

ALGO = AlgoConfig()


def rows(n_tasks: int = 5, group: int = 3, seed: int = 0) -> list[TrainRow]:
    """Groups of rows sharing a prompt, of different lengths, with trained answer tokens."""
    rng = random.Random(seed)
    out = []
    for t in range(n_tasks):
        prompt = [rng.randrange(3, 200) for _ in range(rng.randrange(4, 10))]
        adv = rng.uniform(-1, 1)
        for g in range(group):
            ans = [rng.randrange(3, 200) for _ in range(rng.randrange(3, 14))]
            n, p = len(prompt) + len(ans), len(prompt)
            mask = [0.0] * p + [1.0] * len(ans)
            old = [0.0] * p + [rng.uniform(-6, -1) for _ in ans]
            a = adv * (1 if g % 2 else -1)
            out.append(
                TrainRow(prompt + ans, mask, [a * m for m in mask], old, [0.2] * n, [0.2] * n, [0.0] * n, [0.0] * n, task_id=f"t{t}", sample=g)
            )
    return out


def policy(model) -> SimpleNamespace:
    return SimpleNamespace(model=model, trainable_parameters=lambda: [p for p in model.parameters() if p.requires_grad])


def fresh_model():
    torch.manual_seed(0)
    return load_model("tiny-random").model.train()


def full_params(model) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if any(hasattr(p, "full_tensor") for p in model.parameters()):
        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def scale(a: dict) -> float:
    return max(float(v.float().abs().max()) for v in a.values())


def step(model, batch, optim_cfg: OptimConfig, opt, dp=None):
    return policy_update(policy(model), opt, batch, ALGO, optim_cfg, pad_id=0, norm_constant=64.0, dp=dp)


def grads_mode(dp) -> dict:
    """SGD lr 1 without clipping: new - old = -gradient."""
    o = OptimConfig(micro_batch_size=2, grad_clip=1e9, bf16=False)
    batch = rows()
    model = fresh_model()
    before = full_params(model)
    mine = shard_rows(batch, dp.world_size)[dp.rank]
    st = step(model, mine, o, torch.optim.SGD(model.parameters(), lr=1.0), dp)
    grad_dp = {k: before[k] - v for k, v in full_params(model).items()}
    out = {"rows": [len(s) for s in shard_rows(batch, dp.world_size)], "tokens": [sum(len(r) for r in s) for s in shard_rows(batch, dp.world_size)]}
    if dp.is_main:
        ref = fresh_model()
        st1 = step(ref, batch, o, torch.optim.SGD(ref.parameters(), lr=1.0))
        grad_1 = {k: before[k] - v for k, v in full_params(ref).items()}
        out |= {
            "max_abs_diff": max_diff(grad_dp, grad_1),
            "grad_scale": scale(grad_1),
            "loss": [st.loss, st1.loss],
            "grad_norm": [st.grad_norm, st1.grad_norm],
            "n_tokens": [st.n_tokens, st1.n_tokens],
            "n_rows": [st.n_rows, st1.n_rows],
        }
    return out


def fsdp_mode(dp) -> dict:
    """The same step under DDP and FSDP2: with SGD at learning rate 1 and no clipping (the update
    is the gradient), and with AdamW and clipping (tirl's update)."""
    from tirl.train.fsdp import ShardedModel

    batch = rows()
    mine = shard_rows(batch, dp.world_size)[dp.rank]
    out: dict = {}
    for name, o, make_opt in (
        ("sgd", OptimConfig(micro_batch_size=2, grad_clip=1e9, bf16=False), lambda m: torch.optim.SGD(m.parameters(), lr=1.0)),
        ("adamw", OptimConfig(micro_batch_size=2, lr=1e-3, bf16=False), lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.99))),
    ):
        dp.fsdp = False
        ddp_model = fresh_model()
        before = full_params(ddp_model)
        st_ddp = step(ddp_model, mine, o, make_opt(ddp_model), dp)
        after_ddp = full_params(ddp_model)
        fsdp_model = fresh_model()
        ShardedModel(fsdp_model)
        dp.fsdp = True
        st = step(fsdp_model, mine, o, make_opt(fsdp_model), dp)
        after_fsdp = full_params(fsdp_model)
        if dp.is_main:
            out[name] = {
                "fsdp_vs_ddp": max_diff(after_fsdp, after_ddp),
                "moved": max_diff(after_ddp, before),
                "grad_norm": [st.grad_norm, st_ddp.grad_norm],
                "loss": [st.loss, st_ddp.loss],
                "n_tokens": [st.n_tokens, st_ddp.n_tokens],
            }
    return out


def ckpt_mode(dp, directory: Path) -> dict:
    from tirl.train.checkpoint import load_checkpoint, save_checkpoint
    from tirl.train.fsdp import ShardedModel

    dp.fsdp = True
    o = OptimConfig(micro_batch_size=2, lr=1e-3, bf16=False)
    first, second = rows(seed=1), rows(seed=2)
    model = fresh_model()
    sharded = ShardedModel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=o.betas)
    step(model, shard_rows(first, dp.world_size)[dp.rank], o, opt, dp)
    # every rank writes its shards into the directory rank 0 creates (save_checkpoint's temporary)
    if dp.is_main:

        def write_shards(d):
            dp.broadcast(str(d))
            sharded.save(d, opt)

        save_checkpoint(directory, 1, model=model, trainer_state={}, write_shards=write_shards)
    else:
        sharded.save(Path(dp.broadcast()), opt)
    dp.barrier()
    step(model, shard_rows(second, dp.world_size)[dp.rank], o, opt, dp)
    uninterrupted = full_params(model)

    model2 = fresh_model()
    sharded2 = ShardedModel(model2)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=o.lr, betas=o.betas)
    state = load_checkpoint(directory / "checkpoints" / "step_000001", model=model2, optimizer=opt2, sharded=sharded2)
    step(model2, shard_rows(second, dp.world_size)[dp.rank], o, opt2, dp)
    resumed = full_params(model2)
    files = sorted(p.name for p in (directory / "checkpoints" / "step_000001" / "shards").iterdir()) if dp.is_main else []
    return {"step": state["step"], "resumed_vs_uninterrupted": max_diff(resumed, uninterrupted) if dp.is_main else None, "shard_files": files}


def train_mode(run_dir: str, overrides: list[str]) -> None:
    from cluster_helpers import EVEN

    import tirl.train.rl_trainer as rl
    from tirl.cli.main import app

    out, name = run_dir.rsplit("/", 1)
    rl.C.rewards = lambda *a, **k: EVEN  # a reward that varies between samples (the run must move the weights)
    app(["train", f"run.out_dir={out}", f"run.name={name}", *overrides], standalone_mode=True)


def main() -> None:
    mode = sys.argv[1]
    if mode == "train":
        train_mode(sys.argv[2], sys.argv[3:])
        return
    dp = init_data_parallel(600.0)
    try:
        if mode == "grads":
            out = grads_mode(dp)
        elif mode == "fsdp":
            out = fsdp_mode(dp)
        elif mode == "ckpt":
            out = ckpt_mode(dp, Path(sys.argv[2]))
        elif mode == "all":  # one launch for the three (each launch costs seconds of start-up)
            out = {"grads": grads_mode(dp), "fsdp": fsdp_mode(dp), "ckpt": ckpt_mode(dp, Path(sys.argv[2]))}
        else:
            raise SystemExit(f"unknown mode {mode}")
        if dp.is_main:
            print("RESULT " + json.dumps(out), flush=True)
    finally:
        dist.barrier()
        dp.close()


if __name__ == "__main__":
    main()
