"""One training pass (forward + backward of ``token_logprobs``) with and without activation
checkpointing, taking turns in one process: 8 rows x 300 random tokens of SmolLM2-135M-Instruct,
scored from position 120, with the rows run whole (as in SFT) and on a shared 100-token prefix
(as in the policy update). Prints seconds per pass and the checkpointed/plain ratio (medians).

    python bench/checkpointing_pass.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tirl.models import load_model
from tirl.models.attention import training_attention
from tirl.models.checkpointing import checkpointed_layers
from tirl.train.logprobs import token_logprobs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    lm = load_model("smollm2-135m-instruct")
    model = lm.model
    model.train()
    ids = torch.randint(0, 40000, (8, 300), generator=torch.Generator().manual_seed(0))
    attn = torch.ones_like(ids)
    for prefix in (None, 100):
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for ck in (False, True):
                t = time.perf_counter()
                with training_attention(model, "auto"), checkpointed_layers(model, ck):
                    logp, _ = token_logprobs(model, ids, attn, first=120, prefix=prefix)
                    logp.sum().backward()
                model.zero_grad(set_to_none=True)
                times[ck].append(time.perf_counter() - t)
        plain, ckpt = statistics.median(times[False]), statistics.median(times[True])
        print(f"rows {'whole' if prefix is None else 'on a shared prefix'}: plain {plain:.2f} s, checkpointed {ckpt:.2f} s ({ckpt / plain:.2f}x)")


if __name__ == "__main__":
    main()
