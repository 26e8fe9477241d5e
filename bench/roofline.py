"""How close tirl's training update (and decoding) comes to this CPU's matmul roofline.

1. Matmul peak: the best GFLOP/s of square ``torch.matmul`` over a few sizes, for fp32,
   native bf16 tensors and bf16 autocast on fp32 tensors (what tirl runs), best of repeats.
   Memory bandwidth: the best copy rate of a 256 MiB tensor (bytes read + written).
2. Training roofline: a dense decoder costs about 6 x params FLOPs per token for forward plus
   backward (Kaplan et al. 2020, sec. 2.1; attention's own FLOPs and the fp32 log-softmax over
   the vocabulary are left out, so the real bound is a little lower). Roofline tokens/s =
   peak / (6 x params). Measured: tirl's own ``policy_update`` (micro-batched forward, backward,
   clip and AdamW step) on ``--rows`` rows of ``--seq-len`` tokens: arith prompts rendered by
   TagProtocol, padded with random response tokens that carry the loss. Tokens/s counts every
   position the model processes (prompt included), which is what the 6N model counts.
3. Decode roofline (batch B): a decode step costs 2 x params x B FLOPs and reads every weight
   once, so tokens/s <= min(peak / (2 x params), bandwidth x B / weight bytes). Measured: tirl's
   HFEngine sampling ``--decode-tokens`` tokens for each of ``--rows`` prompts.

    python bench/roofline.py                # SmolLM2-135M-Instruct
    python bench/roofline.py --quick        # tiny-random, small matmuls, one repeat
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass

import torch

MODES = ("fp32", "bf16", "bf16-autocast")


def matmul_gflops(n: int, mode: str, repeats: int) -> float:
    """Best GFLOP/s of an n x n x n matmul (2 n^3 FLOPs)."""
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):  # the first call warms oneDNN's kernel cache
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16-autocast"):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def copy_gbps(mib: int, repeats: int) -> float:
    """Best memory bandwidth of a tensor copy, counting bytes read plus bytes written."""
    src = torch.ones(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best / 1e9


@dataclass
class UpdateRun:
    seconds: float
    processed_tokens: int
    trained_tokens: int


def measure_update(model_name: str, bf16: bool, rows: int, seq_len: int, micro_batch: int, repeats: int, seed: int) -> tuple[list[UpdateRun], int]:
    """Time tirl's policy_update on realistic rows; returns the runs and the parameter count."""
    from tirl.config import load_config
    from tirl.protocol import TagProtocol
    from tirl.tasks import load_tasks
    from tirl.train.policy import Policy, make_optimizer
    from tirl.train.update import policy_update
    from tirl.types import TrainRow

    cfg = load_config(
        "grpo",
        [
            f"model.name={model_name}",
            f"optim.bf16={str(bf16).lower()}",
            "tools.python=false",
            *([f"optim.micro_batch_size={micro_batch}"] if micro_batch else []),
        ],
    )
    policy = Policy(cfg)
    tok = policy.tokenizer
    n_params = sum(p.numel() for p in policy.model.parameters())
    optimizer = make_optimizer(policy.trainable_parameters(), cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.betas)
    protocol = TagProtocol([])
    rng = random.Random(seed)
    train_rows = []
    for i, task in enumerate(load_tasks("arith", n=rows, seed=seed, split="train", difficulty=1)):
        prompt = protocol.prompt_ids(tok, task)[: seq_len // 2]
        response = [rng.randrange(len(tok)) for _ in range(seq_len - len(prompt))]
        n = len(prompt) + len(response)
        mask = [0.0] * len(prompt) + [1.0] * len(response)
        adv = 1.0 if i % 2 == 0 else -1.0
        train_rows.append(
            TrainRow(
                input_ids=prompt + response,
                loss_mask=mask,
                advantage=[adv * m for m in mask],
                old_logprob=[0.0] * n,
                clip_low=[cfg.algo.clip_low] * n,
                clip_high=[cfg.algo.clip_high] * n,
                offpolicy=[0.0] * n,
                detach=[0.0] * n,
            )
        )
    policy.model.train()
    # a short update first warms the allocator, oneDNN and AdamW's state (not timed)
    policy_update(policy, optimizer, train_rows[: cfg.optim.micro_batch_size], cfg.algo, cfg.optim, tok.pad_token_id, float(seq_len))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        stats = policy_update(policy, optimizer, train_rows, cfg.algo, cfg.optim, tok.pad_token_id, float(seq_len))
        runs.append(UpdateRun(time.perf_counter() - t0, rows * seq_len, stats.n_tokens))
    return runs, n_params


def measure_decode(model_name: str, bf16: bool, rows: int, new_tokens: int, seed: int) -> tuple[float, int]:
    """Tokens/s of HFEngine sampling ``new_tokens`` for each of ``rows`` arith prompts (after one warm-up call)."""
    from tirl.engine import HFEngine, HFEngineConfig
    from tirl.engine.base import GenerationRequest, SamplingParams
    from tirl.models import load_model
    from tirl.protocol import TagProtocol
    from tirl.tasks import load_tasks

    lm = load_model(model_name)
    engine = HFEngine(lm.model, lm.tokenizer, HFEngineConfig(max_batch=rows, autocast_bf16=bf16, seed=seed))
    protocol = TagProtocol([])
    tasks = load_tasks("arith", n=rows, seed=seed, split="train", difficulty=1)
    requests = [GenerationRequest(protocol.prompt_ids(lm.tokenizer, t), SamplingParams(max_new_tokens=new_tokens)) for t in tasks]
    engine.generate([GenerationRequest(r.prefix_ids, SamplingParams(max_new_tokens=4)) for r in requests])  # warm-up
    n0, t0 = engine.tokens_generated, time.perf_counter()
    engine.generate(requests)
    return (engine.tokens_generated - n0) / (time.perf_counter() - t0), sum(p.numel() for p in lm.model.parameters())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model alias or directory (default smollm2-135m-instruct; tiny-random with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny-random, matmuls up to 1024, one repeat")
    parser.add_argument("--steps", type=int, default=None, help="timed policy updates per precision (default 2; 1 with --quick)")
    parser.add_argument("--rows", type=int, default=16, help="rows per update batch and per decode batch")
    parser.add_argument("--seq-len", type=int, default=400, help="tokens per training row (prompt + response)")
    parser.add_argument(
        "--micro-batch", type=int, default=None, help="most rows per forward/backward (default: tirl's optim.micro_batch_size, with its token budget)"
    )
    parser.add_argument("--decode-tokens", type=int, default=128, help="new tokens per decode row (0 skips decoding)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.model = args.model or ("tiny-random" if args.quick else "smollm2-135m-instruct")
    args.steps = args.steps or (1 if args.quick else 2)
    sizes = (512, 1024) if args.quick else (512, 1024, 2048, 3072)
    repeats = 1 if args.quick else 5

    import transformers

    transformers.logging.set_verbosity_error()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model={args.model}\n")

    print("| matmul | " + " | ".join(f"n={n}" for n in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    peak = {}
    for mode in MODES:
        g = [matmul_gflops(n, mode, repeats) for n in sizes]
        peak[mode] = max(g)
        print(f"| {mode} GFLOP/s | " + " | ".join(f"{x:.1f}" for x in g) + " |", flush=True)
    bandwidth = copy_gbps(64 if args.quick else 256, repeats)
    print(
        f"\npeak: fp32 {peak['fp32']:.1f}, bf16 {peak['bf16']:.1f}, bf16 autocast {peak['bf16-autocast']:.1f} GFLOP/s; "
        f"copy bandwidth {bandwidth:.1f} GB/s\n"
    )

    mb = args.micro_batch or "tirl's default"
    print(
        f"training update: tirl policy_update, {args.rows} rows x {args.seq_len} tokens, micro-batch {mb}, "
        f"median of {args.steps} after a short warm-up update\n"
    )
    print("| precision | s/update | tokens/s (all positions) | trained tokens/s | roofline tokens/s | fraction of roofline |")
    print("|---|---:|---:|---:|---:|---:|")
    n_params = 0
    for precision, peak_key in (("bf16", "bf16-autocast"), ("fp32", "fp32")):
        runs, n_params = measure_update(args.model, precision == "bf16", args.rows, args.seq_len, args.micro_batch, args.steps, args.seed)
        s = statistics.median(r.seconds for r in runs)
        tps = runs[0].processed_tokens / s
        roof = peak[peak_key] * 1e9 / (6 * n_params)
        print(f"| {precision} | {s:.2f} | {tps:.0f} | {runs[0].trained_tokens / s:.0f} | {roof:.0f} | {tps / roof:.2f} |", flush=True)
    print(
        f"\nparams {n_params / 1e6:.1f}M; roofline = peak / (6 x params); bf16 rows use the bf16-autocast peak, "
        f"fp32 rows the fp32 peak (bf16 native peak {peak['bf16'] * 1e9 / (6 * n_params):.0f} tokens/s)"
    )

    if args.decode_tokens:
        print(f"\ndecode: tirl HFEngine, {args.rows} rows x {args.decode_tokens} new tokens (temperature 1)\n")
        print("| precision | tokens/s | compute bound | weight-read bound | fraction of roofline |")
        print("|---|---:|---:|---:|---:|")
        for precision, peak_key in (("bf16", "bf16-autocast"), ("fp32", "fp32")):
            tps, n = measure_decode(args.model, precision == "bf16", args.rows, args.decode_tokens, args.seed)
            compute = peak[peak_key] * 1e9 / (2 * n)
            memory = bandwidth * 1e9 * args.rows / (4 * n)  # fp32 master weights, read once per step
            print(f"| {precision} | {tps:.0f} | {compute:.0f} | {memory:.0f} | {tps / min(compute, memory):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
