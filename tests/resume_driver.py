"""Run (or resume) a short tiny-random RL run whose reward varies between samples, so every
step really updates weights and optimiser state. Used by test_resume.py as a subprocess."""

import sys

from tirl.config import load_config
from tirl.rewards.base import RewardSpec
from tirl.train.rl_trainer import RLTrainer


def even_token_share(group, task):
    """A deterministic reward with variance: the share of even token ids a sample produced."""
    return [sum(1 for t in tr.completion_ids if t % 2 == 0) / max(len(tr.completion_ids), 1) for tr in group]


def main(run_dir: str, resume: bool) -> None:
    out, name = run_dir.rsplit("/", 1)
    cfg = load_config(
        None,
        [
            "model.name=tiny-random",
            f"run.out_dir={out}",
            f"run.name={name}",
            "train.steps=5",
            "train.tasks_per_step=2",
            "train.checkpoint_every=1",
            "train.keep_last=2",
            "rollout.group_size=3",
            "rollout.max_response_tokens=16",
            "rollout.max_turn_tokens=16",
            "optim.lr=1e-3",
            "optim.micro_batch_size=2",
            "tools.sandbox_workers=1",
            "train.save_trajectories=false",
        ],
    )
    trainer = RLTrainer(cfg, resume=resume)
    trainer.rewards = [RewardSpec("even", even_token_share, 1.0)]
    trainer.train(evaluate=False, on_step=lambda step, m: print(f"done step {step}", flush=True))


if __name__ == "__main__":
    main(sys.argv[1], resume=len(sys.argv) > 2 and sys.argv[2] == "--resume")
