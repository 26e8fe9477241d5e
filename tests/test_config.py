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
    assert load_config("dr_grpo").algo.aggregation == "seq_sum_norm" and load_config("dr_grpo").algo.advantage == "dr_grpo"
    assert load_config("gspo").algo.loss == "gspo"


def test_overrides_and_types():
    cfg = load_config("grpo", ["train.steps=7", "rollout.temperature=0.5", "task.difficulty=[1,2]", "model.lora.enabled=true"])
    assert cfg.train.steps == 7 and cfg.rollout.temperature == 0.5 and cfg.task.difficulty == [1, 2] and cfg.model.lora.enabled
    assert parse_overrides(["a.b.c=3"]) == {"a": {"b": {"c": 3}}}


@pytest.mark.parametrize(
    "override, needle",
    [
        ("algo.clip_lo=0.3", "algo.clip_lo: unknown field"),
        ("rollout.group_size=abc", "rollout.group_size"),
        ("rollout.group_size=1", "group_size must be >= 2"),
        ("algo.loss=ppo", "algo.loss"),
        ("train.steps", "not of the form"),
        ("algo.std_normalize=false", "for Dr. GRPO set algo.advantage=dr_grpo"),
        ("algo.offpolicy_loss=plain_is", "algo.offpolicy_loss was removed"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(override, needle):
    with pytest.raises(ConfigError) as e:
        load_config("grpo", [override])
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and msg.startswith("config error:")


def test_removed_algo_keys_load_where_they_change_nothing():
    # configs saved before std_normalize/offpolicy_loss were removed still load (a run resumes)
    old = load_config("grpo", ["algo.std_normalize=true", "algo.offpolicy_loss=regularized_is"])
    assert old.algo == load_config("grpo").algo
    assert load_config("dr_grpo", ["algo.std_normalize=false"]).algo == load_config("dr_grpo").algo


def test_elpo_refuses_an_advantage_it_would_ignore():
    assert load_config("elpo").algo.advantage == "grpo"
    with pytest.raises(ConfigError, match="hierarchical advantage"):
        load_config("elpo", ["algo.advantage=rloo"])


def test_unknown_recipe_lists_choices():
    with pytest.raises(ConfigError, match="grpo"):
        load_config("nope")


def test_sandbox_section_mirrors_the_sandbox_dataclass():
    # tools.sandbox is converted field for field into the sandbox's own SandboxConfig
    # (tirl.train.components.sandbox_config); both must name the same fields with the same defaults
    import dataclasses

    from tirl.config import SandboxSection
    from tirl.tools.python_sandbox.config import SandboxConfig

    ours = SandboxSection()
    theirs = SandboxConfig()
    assert set(SandboxSection.model_fields) == {f.name for f in dataclasses.fields(SandboxConfig)}
    for name in SandboxSection.model_fields:
        assert getattr(ours, name) == getattr(theirs, name), name


def test_sandbox_settings_reach_the_sandbox():
    from tirl.train.components import sandbox_config

    cfg = load_config(
        "grpo",
        [
            "tools.sandbox.cpu_s=3",
            "tools.sandbox.max_procs=8",
            "tools.sandbox.preload=[math]",
            "tools.sandbox.max_output_chars=200",
            "tools.isolation=none",
        ],
    )
    sc = sandbox_config(cfg)
    assert (sc.cpu_s, sc.max_procs, sc.preload, sc.max_output_chars, sc.isolation) == (3.0, 8, ("math",), 200, "none")
    sc.validate()  # the sandbox's own checks agree with the section's


def test_flat_sandbox_keys_are_aliases():
    cfg = load_config("grpo", ["tools.sandbox_workers=3", "tools.timeout_s=5", "tools.isolation=none", "tools.sandbox_worker_memory_mb=0"])
    sb = cfg.tools.sandbox
    assert (sb.workers, sb.timeout_s, sb.isolation, sb.worker_memory_mb) == (3, 5.0, "none", 0)
    assert (cfg.tools.sandbox_workers, cfg.tools.timeout_s, cfg.tools.isolation, cfg.tools.sandbox_worker_memory_mb) == (3, 5.0, "none", 0)
    cfg.tools.timeout_s = 7  # assignment goes to the section, validated there
    assert cfg.tools.sandbox.timeout_s == 7.0
    with pytest.raises(ValueError):
        cfg.tools.sandbox_workers = 0
    # saved configs hold the sub-section only, and load back the same
    dumped = cfg.model_dump(mode="json")["tools"]
    assert "timeout_s" not in dumped and dumped["sandbox"]["timeout_s"] == 7.0
    # the same value both ways is fine
    assert load_config("grpo", ["tools.timeout_s=5", "tools.sandbox.timeout_s=5"]).tools.timeout_s == 5.0


@pytest.mark.parametrize(
    "override, needle",
    [
        (["tools.sandbox.cpu_s=0"], "tools.sandbox.cpu_s"),
        (["tools.sandbox.isolation=docker"], "tools.sandbox.isolation"),
        (["tools.sandbox.max_proc=3"], "tools.sandbox.max_proc: unknown field"),
        (["tools.sandbox_workers=0"], "tools.sandbox.workers"),
        (["tools.timeout_s=5", "tools.sandbox.timeout_s=6"], "tools.timeout_s (5) and tools.sandbox.timeout_s (6)"),
    ],
)
def test_bad_sandbox_setting_is_one_line(override, needle):
    with pytest.raises(ConfigError) as e:
        load_config("grpo", override)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and msg.startswith("config error:")


def test_every_section_forbids_unknown_fields():
    # one base class (tirl.config.base.Section) carries extra="forbid" for all of them
    import tirl.config as C

    sections = [v for v in vars(C).values() if isinstance(v, type) and issubclass(v, C.Section) and v is not C.Section]
    assert len(sections) >= 25
    for cls in sections:
        assert cls.model_config["extra"] == "forbid", cls
