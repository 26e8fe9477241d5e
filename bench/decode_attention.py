"""Decode-time attention on CPU: the fast path's grouped product against torch's SDPA kernel.

One query per row attends to the row's cached keys/values (SmolLM2-135M's shape: 9 query heads
over 3 key/value heads, head dim 64), for several (rows, cached length) pairs, in fp32 and bf16.
Both kernels run in turn in this process on the same tensors (keys sliced out of a larger cache,
as ``tirl.engine.llama_fast.KVCache`` holds them; rows of different lengths masked), so they
share the machine's load; the table gives each one's median microseconds per call and the
ratio. ``FastLlama._decode_attention`` picks the kernel per dtype from this.

    python bench/decode_attention.py                 # 1 thread
    python bench/decode_attention.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = ((4, 300), (16, 300), (16, 900), (64, 300), (64, 900))


def grouped(q_RH1D, K_RKLD, V_RKLD, bias_R11L):
    """The fast path's fp32 kernel: the G query heads of a key/value head in one (G, D) @ (D, L)."""
    R, NH, _, D = q_RH1D.shape
    KV = K_RKLD.shape[1]
    q = q_RH1D.reshape(R, KV, NH // KV, D)
    s = (q @ K_RKLD.transpose(-1, -2)).float() * D**-0.5 + bias_R11L
    return (torch.softmax(s, -1).to(V_RKLD.dtype) @ V_RKLD).reshape(R, NH, 1, D)


def sdpa(q_RH1D, K_RKLD, V_RKLD, allowed_R11L):
    return F.scaled_dot_product_attention(q_RH1D, K_RKLD, V_RKLD, attn_mask=allowed_R11L, enable_gqa=True)


def timed(f, repeats: int, calls: int) -> float:
    f()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            f()
        out.append(1e6 * (time.perf_counter() - t) / calls)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls", type=int, default=20)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    NH, KV, D = 9, 3, 64
    rows = []
    print("| dtype | rows | keys | grouped us | SDPA us | grouped / SDPA |\n|---|---:|---:|---:|---:|---:|")
    for dt in (torch.float32, torch.bfloat16):
        for R, L in SHAPES:
            cap = L + 128
            K = torch.randn(R, KV, cap, D).to(dt)[:, :, :L]
            V = torch.randn(R, KV, cap, D).to(dt)[:, :, :L]
            q = torch.randn(R, NH, 1, D).to(dt)
            allowed = torch.arange(L)[None, None, None, :] < torch.randint(L // 2, L + 1, (R,))[:, None, None, None]
            bias = torch.zeros(R, 1, 1, L).masked_fill_(~allowed, float("-inf"))
            err = (grouped(q, K, V, bias).float() - sdpa(q, K, V, allowed).float()).abs().max().item()
            if err > (5e-2 if dt == torch.bfloat16 else 1e-4):
                raise SystemExit(f"kernels disagree at {dt} {R}x{L}: max abs diff {err}")
            g = timed(lambda: grouped(q, K, V, bias), args.repeats, args.calls)
            s = timed(lambda: sdpa(q, K, V, allowed), args.repeats, args.calls)
            name = str(dt).removeprefix("torch.")
            rows.append({"dtype": name, "rows": R, "keys": L, "grouped_us": g, "sdpa_us": s})
            print(f"| {name} | {R} | {L} | {g:.0f} | {s:.0f} | {g / s:.2f} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
