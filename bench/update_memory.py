"""Peak memory of one policy update against ``optim.micro_batch_tokens``: each setting runs in a
fresh process (peak resident memory only grows within one), loads the model, builds the update
batch (``--tasks`` x ``--group`` rows of an arith prompt plus ``--response`` loss-carrying
tokens) and takes one ``policy_update``; printed are the process's peak before the update
(model, tokenizer) and after it (plus gradients, AdamW state, bf16 weight copies and the
largest pass's activations).

    python bench/update_memory.py
    python bench/update_memory.py --tokens 1024 2560 4096 --response 250
    python bench/update_memory.py --set optim.activation_checkpointing=true
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def one(args) -> dict:
    import resource

    from update_rows import update_rows

    from tirl.config import load_config
    from tirl.train.policy import Policy, make_optimizer
    from tirl.train.update import micro_batches, policy_update

    cfg = load_config("grpo", [f"model.name={args.model}", "optim.lr=1e-9", f"optim.micro_batch_tokens={args.one}", *args.overrides])
    policy = Policy(cfg)
    tok = policy.tokenizer
    opt = make_optimizer(policy.trainable_parameters(), 1e-9, 0.0, (0.9, 0.99))
    rows = update_rows(tok, args.tasks, args.group, args.response)
    passes = micro_batches(rows, cfg.optim.micro_batch_size, cfg.optim.share_prefix, cfg.optim.micro_batch_tokens)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    policy.model.train()
    policy_update(policy, opt, rows, cfg.algo, cfg.optim, tok.pad_token_id, float(args.response))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "tokens": args.one,
        "passes": len(passes),
        "rows_per_pass": max(len(p) for p in passes),
        "before_gb": before / 2**20,
        "after_gb": after / 2**20,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--tasks", type=int, default=8)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--response", type=int, default=250, help="response tokens per row")
    p.add_argument("--tokens", type=int, nargs="+", default=[1024, 2560, 4096], help="optim.micro_batch_tokens settings")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="a config override, e.g. optim.activation_checkpointing=true")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # internal: run one setting here
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args)))
        return
    print(f"{args.tasks} tasks x {args.group} rows, response {args.response} tokens\n")
    print("| micro_batch_tokens | passes | rows per pass | peak GiB before update | peak GiB after |\n|---:|---:|---:|---:|---:|")
    for t in args.tokens:
        cmd = [
            sys.executable,
            __file__,
            "--model",
            args.model,
            "--tasks",
            str(args.tasks),
            "--group",
            str(args.group),
            "--response",
            str(args.response),
            "--one",
            str(t),
            *(f"--set={o}" for o in args.overrides),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(f"| {t} | {r['passes']} | {r['rows_per_pass']} | {r['before_gb']:.2f} | {r['after_gb']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
