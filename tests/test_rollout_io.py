"""One JSON schema for trajectories and trees (tirl.rollout.io): the same keys for a call, an
observation and an outcome in both files; the typed tree fields survive a round trip; tree files
written before the schema was unified (a call's error under "error") still read."""

import json

from tirl.rollout.io import read_trees, trajectory_from_json, trajectory_to_json, tree_from_json, tree_to_json, write_trees
from tirl.rollout.tree import Branch, build_tree
from tirl.types import CriticalStep, LeafRole, Observation, Origin, Segment, Step, StopReason, ToolCall, Trajectory

BAD_CALL = ToolCall("python", {}, "<python>(</python>", error="SyntaxError: '(' was never closed")
OBS = Observation(False, "SyntaxError", error="SyntaxError", latency_ms=1.23456)


def _traj(sample: int, reward: float) -> Trajectory:
    tr = Trajectory(
        "t",
        sample,
        [1, 2],
        segments=[Segment(Origin.POLICY, [5, 6], [-0.1, -0.2]), Segment(Origin.TOOL, [7]), Segment(Origin.POLICY, [8 + sample])],
        steps=[Step(0, BAD_CALL, OBS, 1), Step(2)],
        answer="4",
        gold="4",
        stop_reason=StopReason.ANSWER,
        text="x",
    )
    tr.reward, tr.rewards = reward, {"correct": reward}
    return tr


def test_trajectory_and_tree_share_one_schema(tmp_path):
    a, b = _traj(0, 1.0), _traj(1, 0.0)
    entry = trajectory_to_json(a)["tool_calls"][0]
    tree = build_tree("t", [Branch(a), Branch(b)], strategy="flat")
    node = tree_to_json(tree)["children"][0]
    # the call and the observation a tree node writes are the trajectory entry's keys and values
    assert node["call"] and node["observation"]
    for key, value in {**node["call"], **node["observation"]}.items():
        assert entry[key] == value, key
    assert node["call"]["parse_error"] == BAD_CALL.error and "error" not in node["call"]
    assert entry["latency_ms"] == node["observation"]["latency_ms"] == 1.235
    # a leaf's outcome is written with the trajectory's keys
    leaf = node["children"][0]
    for key in ("sample", "answer", "reward", "rewards", "stop_reason", "metrics", "text"):
        assert leaf[key] == trajectory_to_json(a)[key], key
    back = trajectory_from_json(trajectory_to_json(a))
    assert back.steps[0].call.error == BAD_CALL.error and back.token_ids == a.token_ids


def test_typed_tree_fields_round_trip(tmp_path):
    a, b, c = _traj(0, 0.0), _traj(1, 1.0), _traj(2, 0.0)
    tree = build_tree(
        "t",
        [Branch(a, role=LeafRole.EXPERT), Branch(b, role=LeafRole.SELF), Branch(c, 0, 1, role=LeafRole.ANCHOR, anchor_step=1)],
        strategy="e3",
        rollouts=2,
        meta={"share": 0.5},
    )
    ref = tree.leaf_for_sample(0)
    ref.success = False
    tree.critical = [CriticalStep(ref.id, t_crit=1, k=1, sample=0)]
    tree.node("0.0").advantage, tree.node("0.0").clip_low = 0.25, 0.315
    write_trees(tmp_path / "t.jsonl", [tree])
    back = read_trees(tmp_path / "t.jsonl")[0]
    assert (back.strategy, back.rollouts, back.dropped, back.meta, back.critical) == ("e3", 2, 0, {"share": 0.5}, tree.critical)
    for x, y in zip(tree.nodes(), back.nodes()):
        assert (x.id, x.sample, x.fork_step, x.parent_sample, x.success, x.role, x.anchor_step, x.advantage, x.clip_low) == (
            y.id,
            y.sample,
            y.fork_step,
            y.parent_sample,
            y.success,
            y.role,
            y.anchor_step,
            y.advantage,
            y.clip_low,
        )
    cont = back.leaf_for_sample(2)
    assert (cont.role, cont.anchor_step, cont.parent_sample, cont.fork_step) == (LeafRole.ANCHOR, 1, 0, 1)
    assert tree_to_json(back) == tree_to_json(tree)


def test_old_tree_files_still_read():
    # the shape tirl wrote before the schema was unified: a call's error under "error", the
    # strategy's counts and ELPO's critical steps in meta, lineage in info
    old = {
        "id": "0",
        "task_id": "t",
        "gold": "4",
        "tokens": [1, 2],
        "meta": {"strategy": "elpo", "rollouts": 3, "dropped": 1, "rounds": 2, "critical": [{"leaf": "0.0", "sample": 0, "t_crit": 1, "k": 0}]},
        "children": [
            {
                "id": "0.0",
                "segments": [{"origin": "policy", "token_ids": [5]}],
                "call": {"name": "python", "arguments": {}, "raw": "(", "error": "SyntaxError"},
                "observation": {
                    "ok": False,
                    "output": "SyntaxError",
                    "error": "SyntaxError",
                    "timed_out": False,
                    "latency_ms": 0.5,
                    "infra_error": False,
                },
                "info": {"sample": 0, "fork_step": 0, "success": False, "advantage": -1.0, "clip_low": 0.315},
                "reward": 0.0,
                "rewards": {},
                "sample": 0,
                "answer": None,
                "stop_reason": "eos",
                "metrics": {},
                "text": "",
                "children": [],
            },
            {
                "id": "0.1",
                "segments": [{"origin": "policy", "token_ids": [6]}],
                "call": None,
                "observation": None,
                "info": {"sample": 1, "fork_step": 0, "success": True},
                "reward": 1.0,
                "children": [],
            },
        ],
    }
    tree = tree_from_json(json.loads(json.dumps(old)))
    leaf = tree.node("0.0")
    assert leaf.call.error == "SyntaxError" and leaf.observation.error == "SyntaxError"
    assert (tree.strategy, tree.rollouts, tree.dropped, tree.meta) == ("elpo", 3, 1, {"rounds": 2})
    assert tree.critical == [CriticalStep("0.0", 1, 0, 0)]
    assert (leaf.success, leaf.advantage, leaf.clip_low, tree.node("0.1").success) == (False, -1.0, 0.315, True)
    assert tree_to_json(tree)["children"][0]["call"]["parse_error"] == "SyntaxError"
