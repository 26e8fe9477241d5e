"""Rollout strategies as the trainer sees them (``base.Strategy``): ``sample`` rolls out one tree
per task, ``credit`` turns the rewarded trees into TrainRows, ``after_step`` reports metrics and
costs. One module each:

- ``flat``: GRPO-family groups (ALGORITHMS.md §1-2);
- ``arpo``: entropy-adaptive branching, soft or hard attribution (§3);
- ``elpo``: BEL trees, hierarchical advantages, error-localised clipping (§4);
- ``e3``: E3-TIR's expert-anchored warm-up, then ``flat`` or ``arpo`` (§5).

The recipe picks one by name (``strategy.name``) here, in ``make_strategy``; nothing else in the
trainer depends on which.
"""

from tirl.config import Config
from tirl.train.strategies.arpo import ARPOStrategy
from tirl.train.strategies.base import Credit, StepContext, StepReport, Strategy
from tirl.train.strategies.e3 import E3Strategy
from tirl.train.strategies.elpo import ELPOStrategy
from tirl.train.strategies.flat import FlatStrategy

STRATEGIES: dict[str, type[Strategy]] = {"flat": FlatStrategy, "arpo": ARPOStrategy, "elpo": ELPOStrategy, "e3": E3Strategy}


def make_strategy(cfg: Config) -> Strategy:
    return STRATEGIES[cfg.strategy.name](cfg)


__all__ = [
    "ARPOStrategy",
    "Credit",
    "E3Strategy",
    "ELPOStrategy",
    "FlatStrategy",
    "STRATEGIES",
    "StepContext",
    "StepReport",
    "Strategy",
    "make_strategy",
]
