"""The config tree: recipes load, overrides apply, bad input fails in one line naming the field."""

import pytest

from tirl.config import RECIPES_DIR, ConfigError, load_config, parse_overrides


def test_every_recipe_loads():
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    assert {"grpo", "dapo", "dr_grpo", "gspo", "sft_then_grpo"} <= set(names)
    for n in names:
        cfg = load_config(n)
        assert cfg.run.name
    assert load_config("dapo").algo.clip_high == 0.28 and load_config("dapo").algo.dynamic_sampling
    assert load_config("dr_grpo").algo.aggregation == "seq_sum_norm" and not load_config("dr_grpo").algo.std_normalize
    assert load_config("gspo").algo.loss == "gspo"


def test_overrides_and_types():
    cfg = load_config("grpo", ["train.steps=7", "rollout.temperature=0.5", "task.difficulty=[1,2]", "model.lora.enabled=true"])
    assert cfg.train.steps == 7 and cfg.rollout.temperature == 0.5 and cfg.task.difficulty == [1, 2] and cfg.model.lora.enabled
    assert parse_overrides(["a.b.c=3"]) == {"a": {"b": {"c": 3}}}


@pytest.mark.parametrize("override, needle", [
    ("algo.clip_lo=0.3", "algo.clip_lo: unknown field"),
    ("rollout.group_size=abc", "rollout.group_size"),
    ("rollout.group_size=1", "group_size must be >= 2"),
    ("algo.loss=ppo", "algo.loss"),
    ("train.steps", "not of the form"),
])
def test_bad_input_is_one_line_naming_the_field(override, needle):
    with pytest.raises(ConfigError) as e:
        load_config("grpo", [override])
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and msg.startswith("config error:")


def test_unknown_recipe_lists_choices():
    with pytest.raises(ConfigError, match="grpo"):
        load_config("nope")
