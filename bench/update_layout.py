"""How tirl's policy update lays a batch out, on CPU: one task's group per forward/backward
(``optim.micro_batch_size=4``, the layout before several groups could share a pass), all 16
rows in one pass with the model's own output layer (logits kept, then log-softmax), and all 16
rows in one pass with the fused output layer (``tirl.train.fused_head``; the default).

One process, one model, the settings taking turns on the same batch (``--tasks`` arith prompts
rendered by TagProtocol x ``--group`` rows of ``--response`` random response tokens, the vs-TRL
batch shape), each a full ``policy_update`` (forward, backward, clip, AdamW step; lr 1e-9 so the
weights barely move between turns). Prints seconds per update per repeat and the medians.

    python bench/update_layout.py
    python bench/update_layout.py --response 300 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time


@contextlib.contextmanager
def logits_path():
    """The model's own output layer instead of the fused one."""
    from tirl.train import logprobs

    fused = logprobs._fused_head
    logprobs._fused_head = lambda model: None
    try:
        yield
    finally:
        logprobs._fused_head = fused


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--response", type=int, default=110, help="response tokens per row")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    from update_rows import update_rows

    from tirl.config import load_config
    from tirl.train.policy import Policy, make_optimizer
    from tirl.train.update import policy_update

    n = args.tasks * args.group
    settings = {  # name: (micro_batch_size, context)
        f"{args.group} rows/pass": (args.group, contextlib.nullcontext),
        f"{n} rows/pass, logits": (n, logits_path),
        f"{n} rows/pass, fused": (n, contextlib.nullcontext),
    }
    cfgs = {
        k: load_config(
            "grpo",
            [f"model.name={args.model}", "tools.python=false", "optim.lr=1e-9", f"optim.micro_batch_size={mb}", "optim.micro_batch_tokens=100000"],
        )
        for k, (mb, _) in settings.items()
    }
    first = next(iter(cfgs.values()))
    policy = Policy(first)
    tok = policy.tokenizer
    opt = make_optimizer(policy.trainable_parameters(), 1e-9, 0.0, (0.9, 0.99))
    rows = update_rows(tok, args.tasks, args.group, args.response)
    prompt_len = len(rows[0]) - args.response
    print(f"{len(rows)} rows: prompt ~{prompt_len} + response {args.response} tokens", flush=True)
    policy.model.train()
    policy_update(policy, opt, rows[: args.group], first.algo, first.optim, tok.pad_token_id, float(args.response))  # warm-up, not timed
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
    names = list(med)
    print(
        "medians: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in med.items())
        + f"; {names[0]} / {names[2]} {med[names[0]] / med[names[2]]:.2f}x, {names[1]} / {names[2]} {med[names[1]] / med[names[2]]:.2f}x"
    )
    return med


if __name__ == "__main__":
    main()
