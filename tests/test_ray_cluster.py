"""Rollouts on Ray workers (a real local Ray cluster, started here with 3 CPUs and a 200 MB
object store, not Ray's local mode, so every call is serialised): at max_staleness=0 they
are the inline run's, with 1 and 2 workers; with max_staleness=1 generation overlaps the
update and no trained row lags more than one step; a worker killed mid-step is restarted and
the step still trains exactly the expected rows."""

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import cluster_helpers
import pytest
from cluster_helpers import EVEN, SMALL, MarkThenSleep, logprob_gap, metrics, same_weights, trajectories

from tirl.cluster import make_trainer
from tirl.config import load_config
from tirl.rewards.base import RewardSpec
from tirl.rollout.io import read_jsonl, read_trees

ROOT = Path(__file__).resolve().parent.parent

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a Ray cluster and several tiny runs: minutes on 2 cores


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(
        num_cpus=3,
        object_store_memory=200 * 2**20,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    ray.cloudpickle.register_pickle_by_value(cluster_helpers)  # the test's reward functions travel to the workers
    yield
    ray.shutdown()


FP32 = "engine.autocast_bf16=false"


@pytest.fixture(scope="module")
def inline(tmp_path_factory):
    """The inline run the Ray runs are compared with (fp32 engine: see the first test)."""
    d = tmp_path_factory.mktemp("inline")
    tr = run(d, "inline", FP32)
    return tr, d / "inline"


def run(tmp_path, name, *extra, rewards=EVEN, steps=2):
    cfg = load_config(None, SMALL + [f"run.out_dir={tmp_path}", f"run.name={name}", f"train.steps={steps}", *extra])
    tr = make_trainer(cfg)
    tr.rewards = rewards
    tr.train(evaluate=False)
    return tr


def test_ray_workers_sample_the_inline_run(tmp_path, ray_cluster, inline):
    """Same token ids, tool calls, rewards and weights after two optimiser steps. The behaviour
    log-probs agree to fp32 rounding (measured 1e-6; bf16 engines: 1e-3): other batch shapes
    (two workers batch different requests together) and the engine's measured thread count
    change the matmuls' summation order, never a token, since each request samples from its own
    seeded stream."""
    ref, ref_dir = inline
    for n, sync in ((1, "object_store"), (2, "disk")):
        tr = run(tmp_path, f"ray{n}", "cluster.scheduler=ray", f"cluster.rollout_workers={n}", f"cluster.weight_sync={sync}", FP32)
        for step in (1, 2):
            assert trajectories(tmp_path / f"ray{n}", step, logprobs=False) == trajectories(ref_dir, step, logprobs=False), (n, step)
            assert logprob_gap(tmp_path / f"ray{n}", ref_dir, step) <= 1e-5
        assert same_weights(tr.policy.model, ref.policy.model), n
        ours, theirs = metrics(tmp_path / f"ray{n}"), metrics(ref_dir)
        for a, b in zip(ours, theirs, strict=True):
            gap = a.pop("policy/logp_gap_engine"), b.pop("policy/logp_gap_engine")
            assert a == b and gap[0] == pytest.approx(gap[1], abs=1e-5)
        assert any(m["policy/grad_norm"] > 0 for m in ours)
        m = [json.loads(x) for x in (tmp_path / f"ray{n}" / "metrics.jsonl").read_text().splitlines()]
        assert all(r["staleness/lag_max"] == 0 and r["cluster/workers"] == n for r in m)
        assert all(r["cluster/weight_bytes"] > 0 and r["cluster/weight_wall_s"] > 0 for r in m)
    assert sorted(p.name for p in (tmp_path / "ray2" / "weights").iterdir()) == ["v000001.safetensors", "v000002.safetensors"]


def test_max_staleness_one_overlaps_and_never_lags_more(tmp_path, ray_cluster):
    """Step t+1's rollouts are sampled while step t trains: from step 2 on every trained row lags
    exactly one version, recorded in the metrics and on the trajectories, and the update weights
    its tokens by the truncated behaviour ratio. A checkpoint taken with rollouts in flight
    makes a resumed run sample those tasks again, so none is skipped."""
    run(tmp_path, "async", "cluster.scheduler=ray", "cluster.rollout_workers=2", "cluster.max_staleness=1", "train.checkpoint_every=1", steps=3)
    m = [json.loads(x) for x in (tmp_path / "async" / "metrics.jsonl").read_text().splitlines()]
    assert [r["staleness/lag_max"] for r in m] == [0.0, 1.0, 1.0]
    assert [r["cluster/in_flight_steps"] for r in m] == [1.0, 1.0, 0.0]
    assert all(r["staleness/dropped_trees"] == 0 and 0 < r["policy/behaviour_weight"] <= 2.0 for r in m)
    for step, version in ((1, 0), (2, 0), (3, 1)):  # step 2 was sampled during step 1's update
        assert {t.policy_version for t in read_jsonl(tmp_path / "async" / "trajectories" / f"step_{step:04d}.jsonl")} == {version}
    # resume from the checkpoint at step 2, taken while step 3's rollouts were in flight
    cfg = load_config(str(tmp_path / "async" / "config.yaml"))
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "async", resumed)
    shutil.rmtree(resumed / "checkpoints" / "step_000003")
    cfg.run.name = "resumed"
    tr = make_trainer(cfg, resume=True)
    tr.rewards = EVEN
    tr.train(evaluate=False)
    tasks = lambda d: sorted({t.task_id for t in read_jsonl(d / "trajectories" / "step_0003.jsonl")})
    assert tasks(resumed) == tasks(tmp_path / "async")


def test_tree_strategy_keeps_each_tree_on_one_worker(tmp_path, ray_cluster):
    run(
        tmp_path,
        "arpo",
        "strategy.name=arpo",
        "strategy.arpo.budget=4",
        "strategy.arpo.initial=2",
        "strategy.save_trees=true",
        "cluster.scheduler=ray",
        "cluster.rollout_workers=2",
        steps=1,
    )
    trees = read_trees(tmp_path / "arpo" / "trees" / "step_0001.jsonl")
    assert len(trees) == 3 and {t.meta["worker"] for t in trees} == {0, 1}
    for t in trees:
        assert t.strategy == "arpo" and t.rollouts == 4 and all(leaf.advantage is not None for leaf in t.leaves())


def test_killed_worker_mid_step_trains_exactly_the_expected_rows(tmp_path, ray_cluster, inline):
    """A rollout worker SIGKILLed while it rewards its slice: Ray restarts it, it gets the newest
    weights, its slice is sampled again, and the step trains the inline run's rows, none lost or
    doubled."""
    marks = tmp_path / "marks"
    marks.mkdir()
    killed: list[int] = []

    def killer():
        deadline = time.time() + 120
        while not killed and time.time() < deadline:
            for p in marks.iterdir():
                killed.append(int(p.name))
                os.kill(int(p.name), signal.SIGKILL)
                return
            time.sleep(0.02)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    tr = run(
        tmp_path, "faulty", "cluster.scheduler=ray", "cluster.rollout_workers=2", FP32, rewards=[RewardSpec("even", MarkThenSleep(str(marks)), 1.0)]
    )
    t.join(timeout=1)
    assert len(killed) == 1
    m = [json.loads(x) for x in (tmp_path / "faulty" / "metrics.jsonl").read_text().splitlines()]
    assert m[0]["cluster/worker_restarts"] == 1 and m[0]["cluster/resubmitted_tasks"] in (1.0, 2.0)
    assert m[1]["cluster/worker_restarts"] == 0 and all(r["cluster/workers"] == 2 for r in m)
    ref, ref_dir = inline
    for step in (1, 2):
        got = trajectories(tmp_path / "faulty", step, logprobs=False)
        assert len(got) == 9 and got == trajectories(ref_dir, step, logprobs=False)
    assert m[0]["train/rows"] == 9 and same_weights(tr.policy.model, ref.policy.model)


def test_logp_gap_shows_a_broken_weight_sync(tmp_path, ray_cluster, inline, monkeypatch):
    """Workers that keep sampling the first weights while being told they have the new ones (a
    silently broken sync): the sampler/trainer log-prob gap of the second step is far above a
    healthy run's, and the trainer's warning names it."""
    import tirl.cluster.driver as driver
    from tirl.train.rl_trainer import logp_gap_warning

    frozen: dict = {}
    real = driver.trained_parameters

    def first_weights_forever(model):
        if not frozen:
            frozen.update({k: v.clone() for k, v in real(model).items()})
        return frozen

    monkeypatch.setattr(driver, "trained_parameters", first_weights_forever)
    run(tmp_path, "broken", "cluster.scheduler=ray", FP32)
    broken = [json.loads(x)["policy/logp_gap_engine"] for x in (tmp_path / "broken" / "metrics.jsonl").read_text().splitlines()]
    healthy = [json.loads(x)["policy/logp_gap_engine"] for x in (inline[1] / "metrics.jsonl").read_text().splitlines()]
    assert broken[0] == pytest.approx(healthy[0], abs=1e-5)  # step 1: both sample the initial weights
    assert broken[1] > 20 * healthy[1]  # measured 0.052 against 0.0004 (the bf16 trainer's rounding)
    assert logp_gap_warning(broken[1], 0.01) is not None and logp_gap_warning(healthy[1], 0.01) is None


def test_ray_started_trainer_ranks_train_like_one_process(tmp_path, ray_cluster, inline):
    """cluster.train_world_size=2 under Ray: this process is rank 0 (it samples through the
    rollout worker), a Ray actor is rank 1; the DDP update on token-balanced shards gives the
    inline run's trajectories and, to fp32 summation order, its weights."""
    import torch

    from tirl.cluster.trainers import TrainerGroup

    cfg = load_config(None, SMALL + [f"run.out_dir={tmp_path}", "run.name=ranks", "cluster.scheduler=ray", "cluster.train_world_size=2", FP32])
    group = TrainerGroup(cfg)
    try:
        tr = make_trainer(cfg, dp=group.dp)
        tr.rewards = EVEN
        tr.train(evaluate=False)
    finally:
        group.finish(ok=True)
    ref, ref_dir = inline
    for step in (1, 2):
        assert trajectories(tmp_path / "ranks", step, logprobs=False) == trajectories(ref_dir, step, logprobs=False)
    ours, theirs = tr.policy.model.state_dict(), ref.policy.model.state_dict()
    assert max(float((ours[k] - theirs[k]).abs().max()) for k in ours) <= 1e-6
    assert all(torch.isfinite(v).all() for v in ours.values())
    assert "RANK" not in os.environ  # this process is no rank any more


def test_e3_warmup_step_across_two_workers(tmp_path, ray_cluster):
    """E3-TIR's warm-up on 2 workers: each task's tree (self-exploration, the expert trajectory,
    anchor continuations) is built on one worker with that worker's expert set; the step's
    expert costs reach the run's totals and its e3 metrics the log."""
    over = [
        "train.steps=1",
        "train.tasks_per_step=2",
        "strategy.e3.warmup_steps=1",
        "strategy.e3.anchors=1",
        "strategy.e3.branches=2",
        "strategy.save_trees=true",
        "task.difficulty=1",
        "rollout.max_response_tokens=140",
        "rollout.max_turn_tokens=16",
        "rollout.group_size=4",
        "cluster.scheduler=ray",
        "cluster.rollout_workers=2",
    ]
    cfg = load_config("e3_tir", SMALL + [f"run.out_dir={tmp_path}", "run.name=e3", *over])
    tr = make_trainer(cfg)
    tr.train(evaluate=False)
    m = json.loads((tmp_path / "e3" / "metrics.jsonl").read_text().splitlines()[0])
    assert m["e3/phase"] == 1.0 and m["rollout/rollouts"] == 8 and m["tree/rollouts_per_task"] == 4
    assert m["total/expert_samples"] == 2 and m["total/expert_tokens"] > 0 and m["train/offpolicy_tokens"] > 0
    trees = read_trees(tmp_path / "e3" / "trees" / "step_0001.jsonl")
    assert {t.meta["worker"] for t in trees} == {0, 1}
    roles = sorted(leaf.role.value for t in trees for leaf in t.leaves())
    assert roles == sorted(["self"] * 4 + ["expert"] * 2 + ["anchor"] * 4)
    assert all((tmp_path / "e3" / "workers" / str(i) / "experts.jsonl").exists() for i in (0, 1))  # one expert set per worker
