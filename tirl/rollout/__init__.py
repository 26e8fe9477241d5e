from tirl.rollout.agent_loop import RolloutConfig, continue_from, prefix_trajectory, rollout
from tirl.rollout.io import read_jsonl, read_trees, trajectory_from_json, trajectory_to_json, tree_from_json, tree_to_json, write_jsonl, write_trees
from tirl.rollout.masks import loss_mask
from tirl.rollout.script import script_trajectory
from tirl.rollout.summary import RolloutSummary, summarize
from tirl.rollout.tree import Branch, build_tree

__all__ = [
    "Branch",
    "RolloutConfig",
    "RolloutSummary",
    "build_tree",
    "continue_from",
    "loss_mask",
    "prefix_trajectory",
    "read_jsonl",
    "read_trees",
    "rollout",
    "script_trajectory",
    "summarize",
    "trajectory_from_json",
    "trajectory_to_json",
    "tree_from_json",
    "tree_to_json",
    "write_jsonl",
    "write_trees",
]
