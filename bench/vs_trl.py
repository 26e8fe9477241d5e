"""tirl vs TRL: wall time of one GRPO step on the same model, prompts and batch.

Both trainers run in this process, one step each in turn (TRL, then tirl, then TRL, ...), so
they see the same machine load. Per step, both:

- draw ``--tasks`` arith tasks (difficulty 1, in the order of tirl's task stream) and render
  them with the same chat prompt (tirl's TagProtocol messages; the prompt ids are checked to
  be identical under TRL's own tokenisation);
- sample ``--group`` completions per task with at most ``--max-tokens`` new tokens
  (temperature 1, no top-k / top-p filter), all rows decoded together;
- score them with tirl's correctness verifier (``score_answer``);
- take one AdamW step on all weights (lr ``--lr``, clip 0.2, token-mean loss, no KL,
  grad-norm clip 1), under bf16 autocast (both trainers' default; ``--precision fp32`` or
  ``both`` for fp32, which is faster on CPUs without native bf16 matmuls).

What differs on purpose: no tools on either side (TRL's GRPOTrainer does not run tirl's tool
loop, so tirl runs with ``tools.python=false`` and its TagProtocol stops on ``</answer>``
only); TRL stops a row at EOS only (it has no stop strings), tirl also at ``</answer>``;
TRL's gradient checkpointing (on by default in GRPOConfig) is switched off because tirl
does not use it. tirl adds its default format penalty to the reward. Each keeps its own
optimiser implementation (TRL: fused AdamW; tirl: ``torch.optim.AdamW``) and micro-batching
(TRL: one forward over the batch; tirl: ``optim.micro_batch_size`` rows at a time).

The first ``--warmup`` steps of each are not timed. TRL's step is split at the moment its
reward function is first called (generation before; scoring, loss, backward and optimiser
step after); tirl's split comes from its own metrics (``time/rollout_s``, ``time/update_s``).

    python bench/vs_trl.py                 # SmolLM2-135M-Instruct, 4 tasks x 4, 3 timed steps
    python bench/vs_trl.py --quick         # tiny-random model, 1 timed step
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Timings:
    """Seconds per timed step, split into generation and the rest."""

    step_s: list[float] = field(default_factory=list)
    generate_s: list[float] = field(default_factory=list)
    update_s: list[float] = field(default_factory=list)
    completion_tokens: list[float] = field(default_factory=list)
    """Mean sampled tokens per row."""
    accuracy: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        values = getattr(self, name)
        return statistics.median(values) if values else float("nan")


def tirl_trainer(args, bf16: bool | None, out_dir: Path):
    from tirl.config import load_config
    from tirl.train.rl_trainer import RLTrainer

    n_steps = args.warmup + args.steps
    overrides = [
        f"model.name={args.model}",
        "tools.python=false",
        "task.name=arith",
        "task.difficulty=1",
        f"task.n_train={args.tasks * n_steps}",
        f"train.steps={n_steps}",
        f"train.tasks_per_step={args.tasks}",
        f"rollout.group_size={args.group}",
        f"rollout.max_response_tokens={args.max_tokens}",
        f"rollout.max_turn_tokens={args.max_tokens}",
        f"optim.lr={args.lr}",
        *([] if bf16 is None else [f"optim.bf16={str(bf16).lower()}"]),  # None: tirl's default (auto)
        "algo.kl_coef=0",
        f"run.out_dir={out_dir}",
        "run.name=tirl",
    ]
    return RLTrainer(load_config("grpo", overrides))


def trl_trainer(args, bf16: bool, tasks, protocol, out_dir: Path, callback):
    """A TRL GRPOTrainer over the same tasks, prompts and hyper-parameters."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from tirl.models import load_model
    from tirl.rewards.verify import score_answer

    lm = load_model(args.model)
    tok = lm.tokenizer
    rows = [{"prompt": protocol.messages(t), "task_index": i} for i, t in enumerate(tasks)]
    for t, r in zip(tasks[:4], rows):  # TRL renders the messages itself: same ids as tirl's prompt
        trl_ids = tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        if list(trl_ids) != protocol.prompt_ids(tok, t):
            raise RuntimeError("TRL and tirl tokenise the prompt differently; the comparison would not be fair")

    def correct(prompts, completions, completion_ids, task_index, **_):
        """tirl's correctness reward: 1 when the last \\boxed{} matches the gold answer."""
        callback.on_reward(completion_ids)
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [score_answer(tasks[i], protocol.extract_answer(x)) for x, i in zip(texts, task_index)]

    config = GRPOConfig(
        output_dir=str(out_dir / "trl"),
        per_device_train_batch_size=args.tasks * args.group,
        gradient_accumulation_steps=1,
        num_generations=args.group,
        max_completion_length=args.max_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        adam_beta1=0.9,
        adam_beta2=0.99,  # tirl's default betas
        max_grad_norm=1.0,
        beta=0.0,
        num_iterations=1,
        epsilon=0.2,
        loss_type="dapo",  # token mean over the batch, tirl's token_mean
        scale_rewards="group",
        max_steps=args.warmup + args.steps,
        use_cpu=True,
        bf16=bf16,
        gradient_checkpointing=False,
        shuffle_dataset=False,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        seed=args.seed,
    )
    trainer = GRPOTrainer(
        model=lm.model, reward_funcs=correct, args=config, train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[callback]
    )
    trainer.remove_callback(PrinterCallback)  # its per-step log dicts would bury the table
    return trainer


def make_callback(args, tirl, results: dict[str, Timings]):
    """A TrainerCallback that times TRL's steps and runs one tirl step after each."""
    from transformers import TrainerCallback

    class Alternate(TrainerCallback):
        def __init__(self):
            self.t0 = self.t_reward = None
            self.tokens = 0.0
            self.step = 0

        def on_reward(self, completion_ids):
            if self.t_reward is None:
                self.t_reward = time.perf_counter()
                self.tokens = sum(len(c) for c in completion_ids) / max(len(completion_ids), 1)

        def on_step_begin(self, a, state, control, **kw):
            self.t_reward = None
            self.t0 = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            t1 = time.perf_counter()
            self.step += 1
            timed = self.step > args.warmup
            if timed:
                r = results["TRL"]
                r.step_s.append(t1 - self.t0)
                r.generate_s.append(self.t_reward - self.t0)
                r.update_s.append(t1 - self.t_reward)
                r.completion_tokens.append(self.tokens)
            m = tirl.train_step()
            if timed:
                r = results["tirl"]
                r.step_s.append(m["time/step_s"])
                r.generate_s.append(m["time/rollout_s"])
                r.update_s.append(m.get("time/update_s", 0.0))
                r.completion_tokens.append(m.get("rollout/policy_tokens", 0.0))
                r.accuracy.append(m.get("reward/accuracy", 0.0))
            print(
                f"step {self.step}{'' if timed else ' (warm-up)'}: TRL {t1 - self.t0:.1f}s, tirl {m['time/step_s']:.1f}s "
                f"(rollout {m['time/rollout_s']:.1f}s, update {m.get('time/update_s', 0.0):.1f}s)",
                file=sys.stderr,
                flush=True,
            )

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and self.step > args.warmup and "rewards/correct/mean" in logs:
                results["TRL"].accuracy.append(float(logs["rewards/correct/mean"]))

    return Alternate()


def run(args, tirl_bf16: bool | None, trl_bf16: bool) -> dict[str, Timings]:
    """Build both trainers (at the given precisions) and time them in turn."""
    from tirl.train.data import TaskStream

    results = {"TRL": Timings(), "tirl": Timings()}
    with tempfile.TemporaryDirectory(prefix="vs_trl-") as tmp:
        out_dir = Path(tmp)
        tirl = tirl_trainer(args, tirl_bf16, out_dir)
        try:
            # the tasks in the order tirl's stream hands them out, so both see the same prompts per step
            tasks = TaskStream(tirl.stream.tasks, tirl.cfg.train.seed).take(args.tasks * (args.warmup + args.steps))
            callback = make_callback(args, tirl, results)
            trl_trainer(args, trl_bf16, tasks, tirl.rt.protocol, out_dir, callback).train()
        finally:
            tirl.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model alias or directory (default smollm2-135m-instruct; tiny-random with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny-random model, 1 warm-up + 1 timed step")
    parser.add_argument("--steps", type=int, default=None, help="timed steps of each trainer (default 3; 1 with --quick)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps of each trainer")
    parser.add_argument("--tasks", type=int, default=4, help="tasks per step")
    parser.add_argument("--group", type=int, default=4, help="completions per task")
    parser.add_argument("--max-tokens", type=int, default=128, help="max new tokens per completion")
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument(
        "--precision",
        choices=["bf16", "fp32", "both", "defaults"],
        default="bf16",
        help="bf16 autocast or fp32 for both; 'both' runs bf16 then fp32; 'defaults' runs each trainer "
        "at its own default (TRL: bf16 autocast; tirl: auto = bf16 only where the CPU has native bf16)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.model = args.model or ("tiny-random" if args.quick else "smollm2-135m-instruct")
    args.steps = args.steps or (1 if args.quick else 3)

    import torch
    import transformers
    import trl

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    precisions = ["bf16", "fp32"] if args.precision == "both" else [args.precision]
    if args.precision == "defaults":
        from tirl.engine.device import resolve_bf16

        precisions = [f"defaults (tirl {'bf16' if resolve_bf16(None) else 'fp32'}, TRL bf16)"]
        all_results = {precisions[0]: run(args, None, True)}
    else:
        all_results = {p: run(args, p == "bf16", p == "bf16") for p in precisions}

    print(
        f"model={args.model} batch={args.tasks} tasks x {args.group} completions, max_new_tokens={args.max_tokens}, "
        f"lr={args.lr}, no tools, no KL; {args.steps} timed steps after {args.warmup} warm-up (medians)"
    )
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, threads {torch.get_num_threads()}\n")
    print("| precision | trainer | s/step | generate s | update s | other s | sampled tokens/row | accuracy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for p, results in all_results.items():
        for name, r in results.items():
            other = r.median("step_s") - r.median("generate_s") - r.median("update_s")
            print(
                f"| {p} | {name} | {r.median('step_s'):.2f} | {r.median('generate_s'):.2f} | {r.median('update_s'):.2f} "
                f"| {max(other, 0.0):.2f} | {r.median('completion_tokens'):.0f} | {r.median('accuracy'):.2f} |"
            )
    print()
    for p, results in all_results.items():
        ratios = [a / b for a, b in zip(results["tirl"].step_s, results["TRL"].step_s)]
        print(
            f"{p}: per-step seconds "
            + "; ".join(f"{n} " + ", ".join(f"{s:.1f}" for s in r.step_s) for n, r in results.items())
            + f"; per-step ratios tirl/TRL {', '.join(f'{x:.2f}' for x in ratios)}"
        )
    print()
    for p, results in all_results.items():
        print(
            f"tirl step time / TRL step time{'' if len(all_results) == 1 else f' ({p})'}: "
            f"{results['tirl'].median('step_s') / results['TRL'].median('step_s'):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
