"""The one typed config tree. Recipes are YAML files of these fields; the command line
overrides any field with ``section.field=value``; the resolved tree is saved in every run.

Defaults run on a CPU in minutes with SmolLM2-135M-Instruct on ``arith``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tirl.engine.hf import HFEngineConfig
from tirl.rollout.agent_loop import RolloutConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraConfig(_Section):
    enabled: bool = False
    """Train a LoRA adapter instead of all weights (PEFT). The KL reference is then the base
    model with the adapter disabled, at no extra memory."""
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ModelConfig(_Section):
    name: str = "smollm2-135m-instruct"
    """Alias (smollm2-135m-instruct, tiny-random), local directory, hub id, or a finished run
    directory (its final_model)."""
    lora: LoraConfig = LoraConfig()


class TaskConfig(_Section):
    name: str = "arith"
    """arith, champ, or a .jsonl/.parquet file."""
    difficulty: int | list[int] | None = None
    """arith levels (1-5) to draw from; None: all levels."""
    n_train: int = Field(2048, ge=1)
    """Training tasks (for arith: generated; for files: the first n)."""
    n_eval: int = Field(64, ge=1)
    """Held-out tasks for evaluation."""
    eval_split: str = "test"
    seed: int = 0


class ToolsConfig(_Section):
    protocol: Literal["tag", "hermes"] = "tag"
    python: bool = True
    calculator: bool = False
    sandbox_workers: int = Field(2, ge=1)
    timeout_s: float = Field(10.0, gt=0)
    isolation: Literal["auto", "bwrap", "none"] = "auto"


class RewardConfig(_Section):
    format_violation: float = -1.0
    """Reward of a completion that breaks the protocol's format (ALGORITHMS.md §1)."""
    overlong_buffer: int = Field(0, ge=0)
    """DAPO soft overlong penalty buffer in tokens (0 disables it); the limit is max_response_tokens."""


class AlgoConfig(_Section):
    advantage: Literal["grpo", "dr_grpo", "rloo"] = "grpo"
    std_normalize: bool = True
    """GRPO std normalisation; False is Dr. GRPO's choice."""
    adv_eps: float = 1e-6
    loss: Literal["ppo_clip", "gspo"] = "ppo_clip"
    clip_low: float = Field(0.2, ge=0.0)
    clip_high: float = Field(0.2, ge=0.0)
    dual_clip: float | None = None
    aggregation: Literal["token_mean", "seq_mean_token_mean", "seq_sum_norm"] = "token_mean"
    norm_constant: float | None = None
    """seq_sum_norm's divisor; None: max_response_tokens."""
    kl_coef: float = Field(0.0, ge=0.0)
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    dynamic_sampling: bool = False
    """DAPO: drop zero-variance groups and sample more tasks until the batch is full."""
    max_resample_rounds: int = Field(3, ge=0)
    """Cap on extra sampling rounds per step under dynamic sampling."""
    ppo_epochs: int = Field(1, ge=1)
    """Optimiser passes over each batch (1 = strictly on-policy)."""
    mask_truncated: bool = False
    """Zero the loss mask of trajectories cut by the token budget."""


class OptimConfig(_Section):
    lr: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    grad_clip: float = Field(1.0, gt=0)
    micro_batch_size: int = Field(4, ge=1)
    """Rows per forward/backward; gradients accumulate over the whole batch."""
    bf16: bool | None = None
    """bf16 autocast for forward/backward (master weights stay fp32); None (auto): only where
    the CPU has native bf16 arithmetic (AVX512-BF16/AMX) — elsewhere fp32 is about 3x faster."""


class SFTConfig(_Section):
    source: str = "arith-reference"
    """'arith-reference' (the reference solver's trajectories on training tasks) or a rollout
    JSONL file (only correct trajectories are used unless all_trajectories)."""
    n_examples: int = Field(512, ge=1)
    epochs: int = Field(1, ge=1)
    lr: float = Field(5e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    all_trajectories: bool = False


class TrainConfig(_Section):
    steps: int = Field(20, ge=0)
    tasks_per_step: int = Field(8, ge=1)
    seed: int = 0
    eval_every: int = Field(0, ge=0)
    """Evaluate every N steps (0: only before and after training)."""
    eval_samples: int = Field(4, ge=1)
    """Samples per eval task (pass@k needs k <= this)."""
    eval_temperature: float = Field(1.0, ge=0.0)
    checkpoint_every: int = Field(10, ge=0)
    keep_last: int = Field(2, ge=1)
    save_trajectories: bool = True
    sft_first: bool = False
    """Run the SFT warm-up (the sft section) before RL."""


class RunConfig(_Section):
    name: str = "run"
    out_dir: str = "runs"


class Config(_Section):
    run: RunConfig = RunConfig()
    model: ModelConfig = ModelConfig()
    task: TaskConfig = TaskConfig()
    tools: ToolsConfig = ToolsConfig()
    engine: HFEngineConfig = HFEngineConfig()
    rollout: RolloutConfig = RolloutConfig()
    reward: RewardConfig = RewardConfig()
    algo: AlgoConfig = AlgoConfig()
    optim: OptimConfig = OptimConfig()
    sft: SFTConfig = SFTConfig()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        if self.reward.overlong_buffer > self.rollout.max_response_tokens:
            raise ValueError("reward.overlong_buffer must not exceed rollout.max_response_tokens")
        if self.rollout.group_size < 2 and self.algo.advantage in ("grpo", "dr_grpo", "rloo"):
            raise ValueError("rollout.group_size must be >= 2 for group-relative advantages")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name


class ConfigError(ValueError):
    """A config problem, in one line that names the field."""


def _format_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "config"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}" + (f" (got {err['input']!r})" if err["type"] != "extra_forbidden" and not isinstance(err.get("input"), dict) else ""))
    return "config error: " + "; ".join(parts)


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config error: {dotted}: {k} is not a section")
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> dict:
    """``a.b=value`` pairs; values are parsed as YAML scalars/lists (``3``, ``true``, ``[1,2]``)."""
    tree: dict = {}
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"config error: override {o!r} is not of the form section.field=value")
        key, raw = o.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_path(tree, key.strip(), value)
    return tree


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


def recipe_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    q = RECIPES_DIR / f"{name}.yaml"
    if q.exists():
        return q
    known = sorted(x.stem for x in RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.exists() else []
    raise ConfigError(f"config error: no recipe {name!r} (a YAML path or one of: {', '.join(known)})")


def load_config(recipe: str | None = None, overrides: list[str] | None = None) -> Config:
    tree: dict = {}
    if recipe:
        path = recipe_path(recipe)
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config error: {path} is not valid YAML ({e})") from e
        if not isinstance(tree, dict):
            raise ConfigError(f"config error: {path} must hold a mapping of sections")
        tree.pop("recipe", None)
    tree = _merge(tree, parse_overrides(overrides or []))
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_format_error(e)) from None


def save_config(cfg: Config, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
