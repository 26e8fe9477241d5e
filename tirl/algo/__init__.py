"""Pure functions for RL math: advantages, policy losses, aggregation, KL, filters.
Algorithm code never touches devices or ranks."""

from tirl.algo.advantages import ADVANTAGES, AdvantageConfig
from tirl.algo.aggregate import AGGREGATIONS, BatchCounts
from tirl.algo.decoupled import behaviour_weight
from tirl.algo.filters import nonzero_variance_groups
from tirl.algo.kl import KL_ESTIMATORS
from tirl.algo.policy_loss import POLICY_LOSSES, LossConfig, LossInput, LossOutput
from tirl.algo.tree_advantages import elc_clip_low, hierarchical_advantages, leaf_mean_advantages

__all__ = [
    "ADVANTAGES",
    "AGGREGATIONS",
    "AdvantageConfig",
    "BatchCounts",
    "KL_ESTIMATORS",
    "LossConfig",
    "LossInput",
    "LossOutput",
    "POLICY_LOSSES",
    "behaviour_weight",
    "elc_clip_low",
    "hierarchical_advantages",
    "leaf_mean_advantages",
    "nonzero_variance_groups",
]
