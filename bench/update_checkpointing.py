"""What activation checkpointing costs in time, against the pass size that bounds memory without
it: ``optim.activation_checkpointing`` on and off at ``optim.micro_batch_tokens`` 2,560 (the
default) and 1,024. One process, one model, the settings taking turns on the same batch
(``--tasks`` arith prompts x ``--group`` rows of ``--response`` random response tokens), each a
full ``policy_update`` (forward, backward, clip, AdamW step; lr 1e-9). Prints seconds per update
per repeat, the medians and each setting's time over the default's. Peak memory per setting is
``bench/update_memory.py``'s job (a fresh process each).

    python bench/update_checkpointing.py
    python bench/update_checkpointing.py --tasks 8 --group 4 --response 250 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--tasks", type=int, default=8)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--response", type=int, default=250, help="response tokens per row")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    from update_rows import update_rows

    from tirl.config import load_config
    from tirl.train.policy import Policy, make_optimizer
    from tirl.train.update import policy_update

    settings = {f"{t} tokens/pass{', checkpointed' if ck else ''}": (t, ck) for t in (2560, 1024) for ck in (False, True)}
    cfgs = {
        k: load_config(
            "grpo",
            [
                f"model.name={args.model}",
                "tools.python=false",
                "optim.lr=1e-9",
                f"optim.micro_batch_tokens={t}",
                f"optim.activation_checkpointing={ck}",
            ],
        )
        for k, (t, ck) in settings.items()
    }
    first = next(iter(cfgs.values()))
    policy = Policy(first)
    tok = policy.tokenizer
    opt = make_optimizer(policy.trainable_parameters(), 1e-9, 0.0, (0.9, 0.99))
    rows = update_rows(tok, args.tasks, args.group, args.response)
    print(f"{len(rows)} rows: prompt ~{len(rows[0]) - args.response} + response {args.response} tokens", flush=True)
    policy.model.train()
    policy_update(policy, opt, rows[: args.group], first.algo, first.optim, tok.pad_token_id, float(args.response))  # warm-up, not timed
    times: dict[str, list[float]] = {k: [] for k in settings}
    for rep in range(args.repeats):
        for name, cfg in cfgs.items():
            t = time.perf_counter()
            policy_update(policy, opt, rows, cfg.algo, cfg.optim, tok.pad_token_id, float(args.response))
            times[name].append(time.perf_counter() - t)
            print(f"{name} repeat {rep}: {times[name][-1]:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med[next(iter(med))]
    print("medians: " + ", ".join(f"{k} {v:.2f} s ({v / base:.2f}x)" for k, v in med.items()))
    return med


if __name__ == "__main__":
    main()
