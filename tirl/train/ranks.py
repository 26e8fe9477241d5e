"""The trainer ranks of a data-parallel run and what rank 0 tells the others.

Rank 0 is the ``RLTrainer``: it samples, rewards and credits the batch, and writes the run
directory. The other ranks hold a replica (DDP) or a shard (FSDP) of the policy and its optimiser
and do only what rank 0 broadcasts to them (one command per broadcast, in order):

- ``Update``: the whole batch's rows; every rank (rank 0 too) trains its ``shard_rows`` share,
  then steps the learning-rate schedule (also when the batch is empty, as rank 0 does);
- ``Load``: restore this checkpoint (rank 0 chose it: the newest intact one); the ranks then
  agree whether all of them did, and rank 0 tries an older one when any failed;
- ``SaveShards``: write this rank's shard of an FSDP checkpoint into this directory;
- ``Stop``: the run is over.

A rank that fails (an exception, a killed process) ends the launch: ``torchrun`` stops the other
ranks, and ``tirl train --resume`` continues from the last checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tirl.config import Config
from tirl.train.parallel import DataParallel, shard_rows
from tirl.train.policy import Policy, make_optimizer, make_scheduler
from tirl.train.rng import seed_everything
from tirl.train.update import UpdateStats, policy_update
from tirl.types import TrainRow


@dataclass
class Update:
    rows: list[TrainRow]
    norm_constant: float
    train: bool = True
    """False: a step with nothing sampled; only the schedule steps."""


@dataclass
class Load:
    checkpoint: str


@dataclass
class SaveShards:
    directory: str


@dataclass
class Stop:
    pass


def behaviour_cap(cfg: Config) -> float | None:
    """The truncation of the behaviour importance weight when rollouts may be stale
    (``cluster.max_staleness > 0``); None: on-policy, no weight."""
    return cfg.cluster.is_cap if cfg.cluster.max_staleness > 0 else None


def loaded_everywhere(loaded: bool, dp: DataParallel | None) -> bool:
    """Whether every rank restored the checkpoint (every rank calls it after each ``Load``);
    one process: whether it did."""
    return loaded if dp is None else dp.sum([float(loaded)])[0] == dp.world_size


def sharded_update(policy, optimizer, rows: Sequence[TrainRow], cfg: Config, pad_id: int, norm: float, dp: DataParallel) -> UpdateStats:
    """This rank's share of one data-parallel optimiser step on the whole batch ``rows``."""
    mine = shard_rows(rows, dp.world_size)[dp.rank]
    return policy_update(policy, optimizer, mine, cfg.algo, cfg.optim, pad_id, norm, dp=dp, behaviour_cap=behaviour_cap(cfg))


class FollowerRank:
    """A rank > 0: the policy replica or shard, its optimiser and schedule, and the command loop."""

    def __init__(self, cfg: Config, dp: DataParallel):
        self.cfg, self.dp = cfg, dp
        seed_everything(cfg.train.seed)
        self.policy = Policy(cfg, dp=dp)
        o = cfg.optim
        self.optimizer = make_optimizer(self.policy.trainable_parameters(), o.lr, o.weight_decay, o.betas)
        self.scheduler = make_scheduler(self.optimizer, o.schedule, o.warmup_steps, cfg.train.steps)
        self.pad_id = self.policy.tokenizer.pad_token_id

    def run(self) -> None:
        """Obey rank 0 until it says stop."""
        while True:
            cmd = self.dp.broadcast()
            if isinstance(cmd, Stop):
                return
            if isinstance(cmd, Update):
                if cmd.train:
                    self.policy.model.train()
                    sharded_update(self.policy, self.optimizer, cmd.rows, self.cfg, self.pad_id, cmd.norm_constant, self.dp)
                    self.policy.after_update()
                self.scheduler.step()
            elif isinstance(cmd, Load):
                from tirl.train.checkpoint import CheckpointError, load_checkpoint

                try:
                    load_checkpoint(
                        Path(cmd.checkpoint), model=self.policy.model, optimizer=self.optimizer, scheduler=self.scheduler, sharded=self.policy.sharded
                    )
                    loaded = True
                except (CheckpointError, OSError):
                    loaded = False  # rank 0 reports it and tries an older checkpoint
                if loaded_everywhere(loaded, self.dp):
                    self.policy.after_update()
            elif isinstance(cmd, SaveShards):
                self.policy.sharded.save(Path(cmd.directory), self.optimizer)
            else:
                raise RuntimeError(f"rank {self.dp.rank}: unknown command {type(cmd).__name__} from rank 0")
