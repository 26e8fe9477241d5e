from tirl.rollout.agent_loop import RolloutConfig, rollout
from tirl.rollout.io import read_jsonl, trajectory_from_json, trajectory_to_json, write_jsonl
from tirl.rollout.masks import loss_mask
from tirl.rollout.script import script_trajectory
from tirl.rollout.summary import RolloutSummary, summarize

__all__ = [
    "RolloutConfig", "RolloutSummary", "loss_mask", "read_jsonl", "rollout", "script_trajectory",
    "summarize", "trajectory_from_json", "trajectory_to_json", "write_jsonl",
]
