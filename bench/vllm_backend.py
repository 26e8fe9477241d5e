"""tirl's vLLM backend against vLLM called directly, on the same prompts with the same sampling.

Both sides are vLLM 'in-process' (engine core in this process, one worker, the same engine
arguments: fp32, eager, prefix caching, processed log-probs, top-20 log-probs per token, one
torch thread while generating: see the note in ``child``). The only difference is the road in and out:

* ``raw``        ``vllm.LLM.generate`` with ``TokensPrompt``s and vLLM ``SamplingParams``, the model's
                 weights read from its directory;
* ``tirl``       ``VLLMEngine.generate`` (tirl requests in, ``Completion``s with log-probs and
                 entropies out), weights pushed from the live transformers model;
* ``tirl-async`` the same requests through ``VLLMEngine.agenerate``, all awaited together (the
                 agent loop's path: a driver coroutine steps vLLM).

Each request carries its own seed, so all three sample the same tokens (checked) and do the same
work. Each variant runs in its own process (one vLLM engine per process), rounds interleave the
variants so they see the same machine load, and the figures are medians over every timed pass.
The tirl process also times a weight sync (``sync_weights``: merged weights into vLLM, prefix
cache dropped).

Usage: python bench/vllm_backend.py [--prompts 32] [--max-tokens 128] [--rounds 2] [--repeats 3]
(needs vLLM: ``make bench-vllm`` runs it in .venv-vllm).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

MODEL = "smollm2-135m-instruct"
STOPS = ("</python>", "</answer>")
VARIANTS = ("raw", "tirl", "tirl-async")


def _prompts(n: int, tokenizer) -> list[list[int]]:
    from tirl.tasks import load_tasks

    tasks = load_tasks("arith", n=n, seed=0, split="test")
    out = []
    for t in tasks:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": t.prompt}], add_generation_prompt=True, tokenize=True)
        out.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    return out


def child(variant: str, n_prompts: int, max_tokens: int, repeats: int) -> dict:
    import torch

    from tirl.engine import GenerationRequest, SamplingParams
    from tirl.models import load_model
    from tirl.models.load import resolve_model_path

    lm = load_model(MODEL)
    lm.model.eval()
    prompts = _prompts(n_prompts, lm.tokenizer)
    passes, ids, extra = [], None, {}
    if variant == "raw":
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine core in this process, as tirl's
        from vllm import LLM
        from vllm import SamplingParams as VSP
        from vllm.inputs import TokensPrompt

        llm = LLM(
            # chunked prefill off and a step budget of the context length, as VLLMEngine sets on CPU
            # (vLLM 0.32's CPU runner fails on a seeded request whose prefill is split)
            model=resolve_model_path(MODEL),
            dtype="float32",
            seed=0,
            max_num_seqs=64,
            max_model_len=8192,
            enable_chunked_prefill=False,
            max_num_batched_tokens=8192,
            enable_prefix_caching=True,
            kv_cache_memory_bytes=2 * 2**30,
            enforce_eager=True,
            logprobs_mode="processed_logprobs",
            max_logprobs=20,
            distributed_executor_backend="uni",
            disable_log_stats=True,
        )
        # vLLM means to serve with one torch thread, but in-process its CPU worker has already
        # replaced torch.set_num_threads by a no-op when it tries; with two threads on this
        # shared machine decoding ran ~10x slower. One thread, as VLLMEngine runs vLLM's steps.
        torch._C.set_num_threads(1)

        def run(rep: int):
            sps = [
                VSP(
                    temperature=1.0,
                    max_tokens=max_tokens,
                    seed=1000 * rep + i,
                    stop=list(STOPS),
                    include_stop_str_in_output=True,
                    skip_special_tokens=False,
                    logprobs=20,
                )
                for i in range(len(prompts))
            ]
            outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], sps, use_tqdm=False)
            return [list(o.outputs[0].token_ids) for o in outs]
    else:
        from tirl.engine.factory import EngineConfig
        from tirl.engine.vllm_engine import VLLMEngine, VLLMEngineConfig

        eng = VLLMEngine(
            lm.model, lm.tokenizer, EngineConfig(backend="vllm", max_batch=64, prefill_chunk=2048, seed=0, vllm=VLLMEngineConfig(kv_cache_gb=2.0))
        )
        t = time.perf_counter()
        eng.sync_weights()
        extra["sync_s"] = time.perf_counter() - t

        def reqs(rep: int):
            sp = SamplingParams(temperature=1.0, max_new_tokens=max_tokens, stop_strings=STOPS)
            return [GenerationRequest(p, sp, seed=1000 * rep + i) for i, p in enumerate(prompts)]

        if variant == "tirl":

            def run(rep: int):
                return [c.token_ids for c in eng.generate(reqs(rep))]
        else:

            async def many(rs):
                return await asyncio.gather(*(eng.agenerate(r) for r in rs))

            def run(rep: int):
                return [c.token_ids for c in asyncio.run(many(reqs(rep)))]

    run(99)  # warm-up (and the first allocation of the cache)
    tokens = []
    for rep in range(repeats):
        t = time.perf_counter()
        got = run(rep)
        passes.append(time.perf_counter() - t)
        tokens.append(sum(len(x) for x in got))
        ids = got if ids is None else ids
    return {"variant": variant, "passes_s": passes, "tokens": tokens, "first_ids": ids, **extra}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.prompts, args.max_tokens, args.repeats)))
        return
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for rnd in range(args.rounds):
        for v in VARIANTS:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                v,
                "--prompts",
                str(args.prompts),
                "--max-tokens",
                str(args.max_tokens),
                "--repeats",
                str(args.repeats),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            if out.returncode != 0 or line is None:
                sys.exit(f"{v} failed:\n{out.stderr[-3000:]}")
            r = json.loads(line[7:])
            results[v].append(r)
            print(f"round {rnd + 1} {v}: passes {', '.join(f'{s:.2f}' for s in r['passes_s'])} s, {r['tokens'][0]} tokens", flush=True)
    same = all(r["first_ids"] == results["raw"][0]["first_ids"] for v in VARIANTS for r in results[v])
    base = statistics.median([s for r in results["raw"] for s in r["passes_s"]])
    print(
        f"\n{args.prompts} prompts x <= {args.max_tokens} tokens, temperature 1, seeded; same sampled tokens in every variant: {'yes' if same else 'NO'}"
    )
    print("\n| variant | median s/pass | tokens/pass | tokens/s | vs raw vLLM |\n|---|---:|---:|---:|---:|")
    for v in VARIANTS:
        med = statistics.median([s for r in results[v] for s in r["passes_s"]])
        tok = results[v][0]["tokens"][0]
        print(f"| {v} | {med:.2f} | {tok} | {tok / med:.1f} | {base / med:.2f}x |")
    syncs = [r["sync_s"] for v in ("tirl", "tirl-async") for r in results[v]]
    print(f"\nweight sync (SmolLM2-135M, fp32): median {statistics.median(syncs):.2f} s over {len(syncs)}")


if __name__ == "__main__":
    main()
