"""The ``cluster`` section: its default is tirl's single-process run bit for bit (a run whose
config spells every default out equals one whose config has no cluster section at all), and
contradictory settings fail in one line naming the field."""

import pytest
import yaml
from cluster_helpers import EVEN, SMALL, metrics, same_weights, trajectories

from tirl.config import ConfigError, load_config
from tirl.train.rl_trainer import RLTrainer

DEFAULTS = {
    "scheduler": "inline",
    "rollout_workers": 1,
    "train_world_size": 1,
    "parallel": "ddp",
    "weight_sync": "inproc",
    "max_staleness": 0,
}


def _run(tmp_path, name, recipe):
    cfg = load_config(str(recipe), SMALL + [f"run.out_dir={tmp_path}", f"run.name={name}"])
    tr = RLTrainer(cfg)
    tr.rewards = EVEN
    tr.train(evaluate=False)
    return tr


def test_default_section_is_the_single_process_run_bit_for_bit(tmp_path):
    plain = load_config("grpo").model_dump(mode="json")
    plain.pop("cluster")  # a config from before the section existed
    spelled = {**plain, "cluster": DEFAULTS}
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(plain))
    (tmp_path / "spelled.yaml").write_text(yaml.safe_dump(spelled))
    a = _run(tmp_path, "a", tmp_path / "plain.yaml")
    b = _run(tmp_path, "b", tmp_path / "spelled.yaml")
    assert a.cfg.cluster.sync_mode == b.cfg.cluster.sync_mode == "inproc"
    ma, mb = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert len(ma) == 2 and ma == mb
    assert any(abs(m["loss/pg"]) > 0 for m in ma), "the run must really update the weights"
    for step in (1, 2):
        assert trajectories(tmp_path / "a", step) == trajectories(tmp_path / "b", step)
    assert same_weights(a.policy.model, b.policy.model)


@pytest.mark.parametrize(
    "override, needle",
    [
        ("cluster.rollout_workers=2", "needs cluster.scheduler=ray"),
        ("cluster.weight_sync=disk", "needs cluster.scheduler=ray"),
        ("cluster.scheduler=ray cluster.weight_sync=inproc", "use object_store or disk"),
        ("cluster.scheduler=slurm", "cluster.scheduler"),
        ("cluster.max_staleness=-1", "cluster.max_staleness"),
        ("cluster.max_staleness=1 rollout.temperature=0.7", "needs rollout.temperature=1"),
        ("cluster.parallel=fsdp model.lora.enabled=true", "with model.lora.enabled use cluster.parallel=ddp"),
        ("cluster.nodes=2", "cluster.nodes: unknown field"),
    ],
)
def test_bad_cluster_settings_are_one_line(override, needle):
    with pytest.raises(ConfigError) as e:
        load_config("grpo", override.split())
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and msg.startswith("config error:")


def test_sync_mode_default_follows_the_scheduler():
    assert load_config("grpo").cluster.sync_mode == "inproc"
    assert load_config("grpo", ["cluster.scheduler=ray"]).cluster.sync_mode == "object_store"
    assert load_config("grpo", ["cluster.scheduler=ray", "cluster.weight_sync=disk"]).cluster.sync_mode == "disk"
