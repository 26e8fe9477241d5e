"""Trainer ranks started by Ray (``cluster.scheduler=ray`` with ``train_world_size`` M > 1).

The driver is rank 0 (it samples through the rollout workers, credits the batch and writes the
run); ranks 1..M-1 are Ray actors, each a ``tirl.train.ranks.FollowerRank``: the same process
group, the same commands and the same DDP/FSDP2 update as under ``torchrun``. The driver picks
the rendezvous address (its own node's IP and a free port) and hands it to the actors, which is
all ``torchrun`` would have done.
"""

from __future__ import annotations

import os
import socket

from tirl.config import Config
from tirl.train.parallel import DataParallel, init_data_parallel


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")


def _set_env(addr: str, port: int, rank: int, world: int) -> dict[str, str | None]:
    """Set the rendezvous variables torch.distributed reads; returns what they were."""
    before = {k: os.environ.get(k) for k in ENV}
    os.environ.update({"MASTER_ADDR": addr, "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": "0"})
    return before


def _restore_env(before: dict[str, str | None]) -> None:
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class TrainerRank:
    """One rank > 0 (made a Ray actor by ``start_trainer_ranks``)."""

    def __init__(self, cfg: Config, rank: int, addr: str, port: int):
        self.cfg, self.rank, self.addr, self.port = cfg, rank, addr, port

    def run(self) -> int:
        """Join the process group, build the policy shard or replica, obey rank 0 until it says
        stop. Returns this rank."""
        from tirl.train.ranks import FollowerRank

        c = self.cfg.cluster
        _set_env(self.addr, self.port, self.rank, c.train_world_size)
        dp = init_data_parallel(c.dist_timeout_s, fsdp=c.parallel == "fsdp")
        try:
            FollowerRank(self.cfg, dp).run()
        finally:
            dp.close()
        return self.rank


class TrainerGroup:
    """Ranks 1..M-1 as Ray actors, and rank 0 (this process) joined to them."""

    def __init__(self, cfg: Config):
        import ray

        from tirl.cluster.pool import start_ray

        self.started_ray = start_ray(cfg)
        c = cfg.cluster
        addr = ray.util.get_node_ip_address()
        port = _free_port()
        gpus = 1 if _cuda() else 0
        actor = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=0)(TrainerRank)
        self.actors = [actor.remote(cfg, r, addr, port) for r in range(1, c.train_world_size)]
        self.runs = [a.run.remote() for a in self.actors]  # they wait for rank 0 in the rendezvous
        self._env = _set_env(addr, port, 0, c.train_world_size)
        self.dp: DataParallel = init_data_parallel(c.dist_timeout_s, fsdp=c.parallel == "fsdp")

    def finish(self, ok: bool) -> None:
        """Release the ranks: after rank 0 said stop (``ok``) once they have left, otherwise
        (rank 0 failed) at once."""
        import ray

        try:
            if ok:
                ray.get(self.runs, timeout=300)
        finally:
            self.dp.close()
            _restore_env(self._env)  # this process is no rank of a launch any more
            for a in self.actors:
                ray.kill(a, no_restart=True)
            if self.started_ray:
                ray.shutdown()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
