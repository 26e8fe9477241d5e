"""The attention kernel of tirl's training update on CPU: transformers' ``sdpa`` (torch's fused
kernel; its CPU backward is slow), ``sdpa`` restricted to torch's math backend, ``eager``, and
tirl's ``grouped`` (eager without copying key/value heads per query head).

One process, one model, the three settings taking turns on the same batch (``--tasks`` arith
prompts rendered by TagProtocol x ``--group`` rows of ``--response`` random response tokens, the
vs-TRL batch shape), each a full ``policy_update`` (micro-batched forward, backward, clip,
AdamW step; lr 1e-9 so the weights barely move between turns). Prints seconds per update per
repeat and the medians.

    python bench/train_attention.py
    python bench/train_attention.py --response 300 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--response", type=int, default=110, help="response tokens per row")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    from torch.nn.attention import SDPBackend, sdpa_kernel
    from update_rows import update_rows

    from tirl.config import load_config
    from tirl.train.policy import Policy, make_optimizer
    from tirl.train.update import policy_update

    settings = {  # name: (optim.attention, context)
        "sdpa": ("sdpa", contextlib.nullcontext),
        "sdpa-math": ("sdpa", lambda: sdpa_kernel(SDPBackend.MATH)),
        "eager": ("eager", contextlib.nullcontext),
        "grouped": ("grouped", contextlib.nullcontext),
    }
    cfgs = {
        k: load_config("grpo", [f"model.name={args.model}", "tools.python=false", "optim.lr=1e-9", f"optim.attention={a}"])
        for k, (a, _) in settings.items()
    }
    policy = Policy(cfgs["sdpa"])
    tok = policy.tokenizer
    opt = make_optimizer(policy.trainable_parameters(), 1e-9, 0.0, (0.9, 0.99))
    rows = update_rows(tok, args.tasks, args.group, args.response)
    prompt_len = len(rows[0]) - args.response
    print(f"{len(rows)} rows: prompt {prompt_len} + response {args.response} tokens", flush=True)
    policy.model.train()
    cfg0 = cfgs["sdpa"]
    policy_update(policy, opt, rows[: args.group], cfg0.algo, cfg0.optim, tok.pad_token_id, float(args.response))  # warm-up, not timed
    times: dict[str, list[float]] = {k: [] for k in settings}
    for rep in range(args.repeats):
        for name, (_, ctx) in settings.items():
            cfg = cfgs[name]
            with ctx():
                t = time.perf_counter()
                policy_update(policy, opt, rows, cfg.algo, cfg.optim, tok.pad_token_id, float(args.response))
                times[name].append(time.perf_counter() - t)
            print(f"{name} repeat {rep}: {times[name][-1]:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        "medians: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in med.items())
        + f"; sdpa / eager {med['sdpa'] / med['eager']:.2f}x, eager / grouped {med['eager'] / med['grouped']:.2f}x"
    )
    return med


if __name__ == "__main__":
    main()
