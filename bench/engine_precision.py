"""The fast path's decode speed in fp32 against bf16 (matrices, activations and KV cache), in one
process: both engines share the model and the machine's load, and take turns on the same
requests (one prompt, ``--rows`` seeded samples of ``--tokens`` tokens, no stop strings, so
both decode the same number of steps).

    python bench/engine_precision.py --rows 16 --tokens 128      # the vs_trl batch
    python bench/engine_precision.py --rows 64 --tokens 96
    python bench/engine_precision.py --rows 16 --tokens 128 --prompt tool   # after the ~260-token TIR prompt

Prints tokens/s per repeat and the medians. bf16 only pays where the CPU multiplies bf16
natively (AMX / AVX512-BF16); elsewhere it is emulated and slower.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--rows", type=int, default=16)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--prompt",
        choices=["short", "tool"],
        default="short",
        help="short: a one-line chat prompt; tool: an arith task under the TagProtocol's tool-describing system prompt",
    )
    args = p.parse_args(argv)

    from tirl.engine.base import GenerationRequest, SamplingParams
    from tirl.engine.hf import HFEngine, HFEngineConfig
    from tirl.models import load_model

    lm = load_model(args.model)
    tok = lm.tokenizer
    if args.prompt == "tool":
        from tirl.protocol import TagProtocol
        from tirl.tasks import load_tasks
        from tirl.tools import make_tool

        tool = make_tool("python", workers=1)  # describes itself in the system prompt; never runs here
        prompt = TagProtocol([tool]).prompt_ids(tok, load_tasks("arith", n=1, split="test")[0])
    else:
        text = tok.apply_chat_template(
            [{"role": "user", "content": "Write a long story about a cat who learns Python and solves arithmetic problems."}],
            add_generation_prompt=True,
            tokenize=False,
        )
        prompt = tok(text, add_special_tokens=False)["input_ids"]
    print(f"prompt: {len(prompt)} tokens", flush=True)
    engines = {p: HFEngine(lm.model, tok, HFEngineConfig(autocast_bf16=p == "bf16", max_batch=max(args.rows, 4))) for p in ("fp32", "bf16")}
    if any(e.batcher is None for e in engines.values()):
        raise SystemExit(f"{args.model}: the fast path does not support this model ({engines['fp32'].fast_path_reason})")
    speed: dict[str, list[float]] = {k: [] for k in engines}
    for rep in range(args.repeats):
        for name, e in engines.items():
            # a distinct last prompt token per row: rows share the prompt's keys/values but not the whole prefix
            reqs = [
                GenerationRequest(prompt + [100 + i % 50], SamplingParams(max_new_tokens=args.tokens), seed=rep * 1000 + i) for i in range(args.rows)
            ]
            t = time.perf_counter()
            out = e.generate(reqs)
            dt = time.perf_counter() - t
            n = sum(len(c.token_ids) for c in out)
            speed[name].append(n / dt)
            print(f"{name} repeat {rep}: {n} tokens in {dt:.2f} s = {n / dt:.1f} tokens/s", flush=True)
    med = {k: statistics.median(v) for k, v in speed.items()}
    print(
        f"rows {args.rows}, tokens {args.tokens}: fp32 {med['fp32']:.1f} tokens/s, bf16 {med['bf16']:.1f} tokens/s, bf16/fp32 {med['bf16'] / med['fp32']:.2f}x"
    )
    return med


if __name__ == "__main__":
    main()
