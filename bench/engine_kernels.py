"""The kernel choices behind HFEngine's fast path, measured side by side.

1. Decoding multiplies a few rows by each weight matrix. ``F.linear(x, W)`` (what a
   transformers model calls) against ``x @ W_t`` with a pre-transposed contiguous copy (what
   ``tirl.engine.llama_fast`` does in fp32), for SmolLM2-135M's shapes.
2. The same in bf16, the way a decode step meets them: every layer's own matrices in turn
   (270 MB, so each is read from memory, not cache): ``x @ W_t`` against oneDNN-packed
   weights (``torch.ops.mkldnn._linear_pointwise``, what the fast path does in bf16).
3. Sampling one token per row from a 49,152-token vocabulary: an exponential race (one random
   number per vocabulary entry) against inverse-CDF sampling (one per row), and the inverse
   CDF as one float64 running sum over the vocabulary against tirl's two-level search.

Usage: python bench/engine_kernels.py [--rows 16 64] [--repeats 7]
Prints medians over repeats, interleaving the variants so both see the same machine load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def _time(fn, inner: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t) / inner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    # (in, out, count per forward) for SmolLM2-135M: q|k|v fused, o, gate|up fused, down; lm head
    shapes = [(576, 960, 30), (576, 576, 30), (576, 3072, 30), (1536, 576, 30), (576, 49152, 1)]
    print("\n| rows | F.linear ms/forward | x @ W_t ms/forward | ratio |\n|---:|---:|---:|---:|")
    for R in args.rows:
        lin, tr = [], []
        mats = [(torch.randn(R, k), torch.randn(n, k)) for k, n, _ in shapes]
        mats_t = [(x, w.t().contiguous()) for x, w in mats]
        for _ in range(args.repeats):
            lin.append(sum(c * _time(lambda x=x, w=w: F.linear(x, w), 3) for (x, w), (_, _, c) in zip(mats, shapes)))
            tr.append(sum(c * _time(lambda x=x, w=w: x @ w, 3) for (x, w), (_, _, c) in zip(mats_t, shapes)))
        a, b = statistics.median(lin) * 1e3, statistics.median(tr) * 1e3
        print(f"| {R} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")

    from tirl.engine.llama_fast import packing_available

    if packing_available():
        print("\n| rows | bf16 x @ W_t ms/forward | bf16 packed ms/forward | ratio |\n|---:|---:|---:|---:|")
        for R in args.rows:
            layers = [[torch.randn(n, k).to(torch.bfloat16) for k, n, c in shapes for _ in range(c)]]
            ws_t = [w.t().contiguous() for w in layers[0]]
            ws_p = [torch.ops.mkldnn._reorder_linear_weight(w, 16) for w in layers[0]]
            xs = {k: torch.randn(R, k).to(torch.bfloat16) for k, _, _ in shapes}
            ins = [xs[w.shape[1]] for w in layers[0]]
            plain, packed = [], []
            for _ in range(args.repeats):
                plain.append(_time(lambda: [x @ w for x, w in zip(ins, ws_t)], 2))
                packed.append(_time(lambda: [torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "") for x, w in zip(ins, ws_p)], 2))
            a, b = statistics.median(plain) * 1e3, statistics.median(packed) * 1e3
            print(f"| {R} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
    else:
        print("\n(this torch build does not pack bf16 weights for oneDNN: no bf16 table)")

    from tirl.engine.sampling import filtered_logprobs, inverse_cdf, sample_tokens

    print("\n| rows | exponential race ms | inverse CDF ms | ratio |\n|---:|---:|---:|---:|")
    g = torch.Generator().manual_seed(0)
    for R in args.rows:
        logits = torch.randn(R, 49152) * 3
        t, k, p = torch.ones(R), torch.zeros(R, dtype=torch.long), torch.ones(R)

        def race():
            probs = torch.softmax(logits, -1)
            return (probs / torch.empty_like(probs).exponential_(generator=g)).argmax(-1)

        ra, cdf = [], []
        for _ in range(args.repeats):
            ra.append(_time(race, 3))
            cdf.append(_time(lambda: sample_tokens(logits, t, k, p, g), 3))
        a, b = statistics.median(ra) * 1e3, statistics.median(cdf) * 1e3
        print(f"| {R} | {a:.1f} | {b:.1f} (incl. log-probs, entropy) | {a / b:.1f}x |")

    print("\n| rows | one float64 cumsum ms | two-level ms | ratio |\n|---:|---:|---:|---:|")
    for R in args.rows:
        probs = filtered_logprobs(torch.randn(R, 49152) * 3, torch.ones(R), torch.zeros(R, dtype=torch.long), torch.ones(R)).exp()
        u = torch.rand(R, generator=g, dtype=torch.float64)

        def one_level():
            cdf = probs.double().cumsum(-1)
            return torch.searchsorted(cdf, u[:, None] * cdf[:, -1:], right=True)

        one, two = [], []
        for _ in range(args.repeats):
            one.append(_time(one_level, 3))
            two.append(_time(lambda: inverse_cdf(probs, u), 3))
        a, b = statistics.median(one) * 1e3, statistics.median(two) * 1e3
        print(f"| {R} | {a:.2f} | {b:.2f} | {a / b:.1f}x |")


if __name__ == "__main__":
    main()
