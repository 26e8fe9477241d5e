"""The RL trainer with tree strategies on tiny-random: one step of each recipe runs, logs the tree
metrics, saves trees that read back, and trains rows whose credit comes from the tree."""

import json

import pytest
from fake_engine import ScriptedEngine

from tirl.config import load_config
from tirl.rollout.io import read_trees
from tirl.train.rl_trainer import RLTrainer

SMALL = [
    "model.name=tiny-random",
    "train.steps=1",
    "train.tasks_per_step=2",
    "train.checkpoint_every=0",
    "rollout.max_response_tokens=24",
    "rollout.max_turn_tokens=12",
    "optim.micro_batch_size=4",
    "tools.sandbox_workers=1",
    "task.n_train=8",
    "task.n_eval=2",
]


def _trainer(tmp_path, recipe, *extra):
    cfg = load_config(recipe, SMALL + [f"run.out_dir={tmp_path}", f"run.name={recipe}", *extra])
    return RLTrainer(cfg)


@pytest.mark.parametrize(
    "recipe,extra",
    [
        ("arpo", ["strategy.arpo.budget=4", "strategy.arpo.initial=2"]),
        ("elpo", ["strategy.elpo.budget=4", "strategy.elpo.buffer=2"]),
    ],
)
def test_one_tree_step_on_tiny_random(tmp_path, recipe, extra):
    tr = _trainer(tmp_path, recipe, *extra)
    try:
        m = tr.train_step()
    finally:
        tr.close()
    assert m["tree/rollouts_per_task"] == 4 and m["rollout/rollouts"] == 8
    assert m["train/rows"] == m["rollout/n"] and m["train/tokens"] > 0
    assert "tree/depth" in m and "engine/prefix_tokens_recomputed" in m
    trees = read_trees(tmp_path / recipe / "trees" / "step_0001.jsonl")
    assert len(trees) == 2 and all(t.strategy == recipe for t in trees)
    for t in trees:  # every trained step recorded the advantage it got
        assert all(leaf.advantage is not None for leaf in t.leaves())
    if recipe == "elpo":  # the random model fails every sample, so every tree has a search
        assert all(t.critical for t in trees)


class CountingEngine(ScriptedEngine):
    tokens_generated = 0


def test_elpo_step_with_a_branching_tree(tmp_path, monkeypatch):
    """A scripted policy that calls the tool twice and answers: BEL searches the failures and the
    ELC bound reaches the update's rows through the tree."""
    tr = _trainer(
        tmp_path,
        "elpo",
        "strategy.elpo.budget=6",
        "strategy.elpo.buffer=2",
        "train.tasks_per_step=1",
        "rollout.max_response_tokens=200",
        "rollout.max_turn_tokens=64",
    )
    tr.rt.engine = CountingEngine(tr.tokenizer, ["<python>x = 1</python>", "<python>print(x)</python>", "<answer>\\boxed{zzz}</answer>"])
    seen = []
    import tirl.train.rl_trainer as mod

    real = mod.policy_update

    def spy(policy, opt, rows, *a, **k):
        seen.extend(rows)
        return real(policy, opt, rows, *a, **k)

    monkeypatch.setattr(mod, "policy_update", spy)
    try:
        m = tr.train_step()
    finally:
        tr.close()
    # every sample fails (zzz is never the gold), so each search probes and finds nothing recoverable
    assert m["tree/rollouts_per_task"] == 6 and m["tree/critical_per_task"] >= 1 and m["tree/depth"] >= 2
    widened = {round(x, 6) for r in seen for x, msk in zip(r.clip_low, r.loss_mask) if msk}
    assert widened == {0.2, 0.315} or widened == {0.315}
    assert {x for r in seen for x in r.clip_high} == {0.315}
    line = json.loads((tmp_path / "elpo" / "trees" / "step_0001.jsonl").read_text().splitlines()[0])
    assert line["id"] == "0" and line["children"] and "meta" in line
