"""Scale-out on existing distributed engines (docs/SCALING.md): Ray rollout workers and the driver
loop (``driver``, ``pool``, ``worker``), weight sync (``weight_sync``), and Ray-started trainer
ranks (``trainers``). The data-parallel update itself (DDP, FSDP2) is ``tirl.train.parallel``,
``tirl.train.fsdp`` and ``tirl.train.ranks``; torchrun launches it without Ray.

``make_trainer`` builds the ``RLTrainer`` a config asks for: inline (the default) or with its
rollouts on Ray workers. Ray is imported only when a run uses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tirl.config import Config

if TYPE_CHECKING:
    from tirl.train.parallel import DataParallel
    from tirl.train.rl_trainer import RLTrainer


def make_trainer(cfg: Config, resume: bool = False, overwrite: bool = False, dp: DataParallel | None = None) -> RLTrainer:
    """The trainer for ``cfg``: with ``cluster.scheduler=ray`` its rollouts run on Ray workers
    (started at its first step)."""
    from tirl.train.rl_trainer import RLTrainer

    factory = None
    if cfg.cluster.scheduler == "ray":
        from tirl.cluster.driver import RayRollouts

        factory = RayRollouts
    return RLTrainer(cfg, resume=resume, overwrite=overwrite, dp=dp, rollouts_factory=factory)
