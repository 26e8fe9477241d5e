"""The one typed config tree. Recipes are YAML files of these fields; the command line
overrides any field with ``section.field=value``; the resolved tree is saved in every run.

Defaults run on a CPU in minutes with SmolLM2-135M-Instruct on ``arith``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tirl.engine.factory import EngineConfig
from tirl.engine.openai import OpenAIEngineConfig
from tirl.errors import UserError
from tirl.rollout.agent_loop import RolloutConfig
from tirl.rollout.arpo import ARPOConfig
from tirl.rollout.e3 import E3Config
from tirl.rollout.elpo import ELPOConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


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
    sandbox_worker_memory_mb: int = Field(4096, ge=0)
    """Memory cap of one sandbox worker with all its sessions (a memory cgroup); 0: none."""


class EfficiencyRewardConfig(_Section):
    """ET-Agent's efficiency-shaped reward ``R_corr·f_tool·f_len + R_format`` (ALGORITHMS.md §6,
    arXiv 2601.06860 Eq. 1-3). Replaces the outcome reward when enabled."""

    enabled: bool = False
    sigma_tool: float = Field(0.1, ge=0.0)
    """Initial σ of the tool-count factor (the paper's 0.1; the released yaml has 0.2)."""
    sigma_len: float = Field(0.1, ge=0.0)
    """Initial σ of the reasoning-length factor (the paper's 0.1; the released yaml has 0.5)."""
    decay: bool = True
    """Decay both σ linearly to 0 over the run (one curriculum round = one run's train.steps)."""
    scale: float = Field(2.0, gt=0.0)
    """Numerator of the sigmoid factors: 2 (released code, 1 at the group mean) or 1 (paper)."""


class RMRewardConfig(_Section):
    """AutoTraj's reward-model term (ALGORITHMS.md §7): ``R = max(S, S + weight·rm)`` when the
    outcome score S > 0, so the reward model can only add; format violations stay at -1."""

    path: str | None = None
    """Directory of a trained trajectory reward model (``tirl rm train --out``); None disables."""
    weight: float = Field(0.2, ge=0.0)
    batch_size: int = Field(8, ge=1)


class RewardConfig(_Section):
    format_violation: float = -1.0
    """Reward of a completion that breaks the protocol's format (ALGORITHMS.md §1)."""
    overlong_buffer: int = Field(0, ge=0)
    """DAPO soft overlong penalty buffer in tokens (0 disables it); the limit is max_response_tokens."""
    efficiency: EfficiencyRewardConfig = EfficiencyRewardConfig()
    rm: RMRewardConfig = RMRewardConfig()
    otc_alpha: float = Field(0.0, ge=0.0)
    """OTC tool-productivity reward ``α·r_tool·correct`` added to the outcome (ALGORITHMS.md §8); 0 disables."""
    multi_tool_bonus: float = Field(0.0, ge=0.0)
    """Tool-Star bonus for a correct answer that used both search and python (ALGORITHMS.md §8: 0.1); 0 disables."""


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
    offpolicy_coef: float = Field(0.0, ge=0.0)
    """Weight of the off-policy term on expert tokens of the rows (offpolicy = 1 and not
    detached; E3-TIR's expert-guided sample); 0 disables it. Its tokens share the aggregation's
    normaliser with the policy tokens (LUFFY, arXiv 2504.14945, Eq. 6)."""
    offpolicy_loss: Literal["regularized_is"] = "regularized_is"
    """The off-policy term (``tirl.algo.offpolicy``): LUFFY's regularised importance weight
    -p/(p + gamma) * A, with the expert's probability taken as 1."""
    offpolicy_gamma: float = Field(0.1, gt=0.0)
    """gamma of p/(p + gamma) (LUFFY: 0.1)."""


class StrategyConfig(_Section):
    """How each task's trajectories are sampled and credited (``tirl.train.strategies``)."""

    name: Literal["flat", "arpo", "elpo", "e3"] = "flat"
    """flat: rollout.group_size independent samples per task (GRPO family); arpo: entropy-adaptive
    branching after tool calls (ALGORITHMS.md §3); elpo: binary-search error-localisation trees,
    hierarchical advantages and error-localised clipping (ALGORITHMS.md §4); e3: E3-TIR's
    expert-anchored warm-up, then plain GRPO (ALGORITHMS.md §5)."""
    dedupe_prefix: bool = False
    """Train each token shared by several branches of a tree once (its other copies are
    detached) instead of once per root-to-leaf row. Needs per-node credit (elpo, or arpo with
    hard attribution)."""
    save_trees: bool = True
    """Write every step's trees to trees/step_XXXX.jsonl in the run directory."""
    arpo: ARPOConfig = ARPOConfig()
    elpo: ELPOConfig = ELPOConfig()
    e3: E3Config = E3Config()

    @model_validator(mode="after")
    def _credit_fits(self) -> "StrategyConfig":
        if self.dedupe_prefix and self.name == "arpo" and self.arpo.attribution == "soft":
            raise ValueError("dedupe_prefix needs per-node credit; with strategy arpo set arpo.attribution=hard")
        return self


class OptimConfig(_Section):
    lr: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    grad_clip: float = Field(1.0, gt=0)
    micro_batch_size: int = Field(16, ge=1)
    """Most rows per forward/backward; gradients accumulate over the whole batch."""
    micro_batch_tokens: int = Field(2560, ge=1)
    """Most tokens one forward/backward runs (rows x the longest, padding included; a task's
    shared prompt counted once): what bounds a pass's memory, whatever the row lengths. Larger
    passes run faster on CPU up to a point (bigger matrices, fewer per-pass weight casts): the
    vs-TRL update, 4 groups of 4 rows in one pass of ~2,200 tokens, is 1.48x faster than one
    group per pass (bench/update_layout.py); each pass keeps its activations and attention
    scores for the backward pass, about 2 MB per token for SmolLM2-135M: one update of 32 rows
    of 371 tokens peaked at 4.1 GiB with 1,024, 7.2 with 2,560 and 8.8 with 4,096
    (bench/update_memory.py, model, gradients and AdamW state included)."""
    share_prefix: bool = True
    """Run the prompt a micro-batch's rows share once (a task's rows are batched together): the
    same log-probs and gradient as running it per row, at a fraction of the cost."""
    bf16: bool | None = None
    """bf16 autocast for forward/backward (master weights stay fp32); None (auto): only where
    the CPU has native bf16 arithmetic (AVX512-BF16/AMX) — elsewhere fp32 is about 3x faster."""
    attention: Literal["auto", "grouped", "eager", "sdpa", "model"] = "auto"
    """Attention kernel of the passes that back-propagate (policy update, SFT): auto = on CPU,
    grouped (eager without copying key/value heads per query head) for Llama-family models and
    eager for others (torch's fused SDPA backward is slow there; ``tirl.models.attention``), the
    model's own elsewhere; model = never switch."""


class SFTConfig(_Section):
    source: str = "arith-reference"
    """'arith-reference' (the reference solver's trajectories on training tasks) or a rollout
    JSONL file (only correct trajectories are used unless all_trajectories)."""
    n_examples: int = Field(512, ge=1)
    epochs: int = Field(1, ge=1)
    lr: float = Field(5e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    all_trajectories: bool = False


class RMConfig(_Section):
    """Trajectory reward model training (``tirl rm train``; ALGORITHMS.md §7, AutoTraj's
    LLaMA-Factory ``stage: rm`` settings): a scalar head on the base model, LoRA, Bradley-Terry."""

    model: str | None = None
    """Base model; None: model.name (the policy's base)."""
    pairs: str | None = None
    """Preference pairs JSONL (``tirl repair`` writes one: prompt, chosen, rejected)."""
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lr: float = Field(1e-5, gt=0)
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(8, ge=1)
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    """Held-out share of the pairs for pairwise accuracy."""
    max_tokens: int = Field(1024, ge=8)
    """Rendered pairs are cut to their last max_tokens tokens (the answer is at the end)."""


class ParetoConfig(_Section):
    """ET-Agent group-wise Pareto sampling (ALGORITHMS.md §6 Phase 2a, arXiv 2601.06860 §4.2.2)."""

    samples_per_task: int = Field(8, ge=2)
    """K rollouts per candidate task (released code 8; paper 16)."""
    n_select: int = Field(64, ge=1)
    """N tasks kept for the next round (released script 8000)."""
    mixed_only: bool = True
    """Keep only groups with both a correct and a wrong member (released code's post-filter)."""
    qa_threshold: float = Field(0.75, ge=0.0, le=1.0)
    """QA groups are mixed when one F1 >= this and one F1 < it."""
    n_candidates: int = Field(256, ge=1)
    """Candidate training tasks sampled each round (ET-Agent samples every source question)."""
    rounds: int = Field(3, ge=1)
    """Curriculum rounds of (Pareto sampling, RL); σ decays to 0 within each (ET-Agent: 3)."""


class RepairConfig(_Section):
    """AutoTraj trajectory scoring and repair (ALGORITHMS.md §7, arXiv 2601.23032)."""

    keep_all: float = Field(0.90, ge=0.0, le=1.0)
    """Keep every correct trajectory of a task when all score >= this."""
    keep_best: float = Field(0.86, ge=0.0, le=1.0)
    """Otherwise keep the best when it scores >= this; the rest go to the repairer."""
    accept_correct: float = Field(0.86, ge=0.0, le=1.0)
    """Accept the repair of a correct low-quality trajectory when correct and scoring >= this."""
    accept_wrong: float = Field(0.80, ge=0.0, le=1.0)
    """Accept the repair of a wrong trajectory when correct and scoring >= this."""
    max_tool_calls: int = Field(3, ge=0)
    """Tool calls allowed to the repairer (AutoTraj: at most 3)."""
    repairer: str | None = None
    """Repairer: a model (alias, directory, hub id or ``openai:<endpoint>``) given the question and
    the bad trajectory; None: the policy itself. ``arith-reference`` (the task's reference solver,
    an oracle) or a ``.jsonl`` of trajectories write the task's solution without reading it."""
    temperature: float = Field(0.0, ge=0.0)
    """Repairer sampling temperature (AutoTraj repairs greedily)."""


class FlywheelConfig(_Section):
    """ET-Agent self-evolving data flywheel (ALGORITHMS.md §6, arXiv 2601.06860 §4.1, Alg. 1)."""

    rounds: int = Field(3, ge=0)
    """Evolution rounds per task (released code MAX_EVOLVE_TRAJECTORIES_TIMES=3)."""
    initial_samples: int = Field(2, ge=1)
    """Rollouts per task before evolving."""
    judge: str | None = None
    """Judge / refiner model; None: the policy itself (as the paper describes)."""
    judge_max_tokens: int = Field(512, ge=1)
    """Token budget of one judge reply (greedy)."""
    hint: str = "Wait, perhaps I should use Python tools and rethink this problem."
    """Hint injected after a wrong trajectory's flawed step (paper Fig. 9, math)."""
    extra_tool_calls: int = Field(4, ge=0)
    """Extra tool calls allowed to an evolved continuation (released code +4)."""


class TrainConfig(_Section):
    steps: int = Field(20, ge=0)
    tasks_per_step: int = Field(8, ge=1)
    seed: int = 0
    eval_every: int = Field(0, ge=0)
    """Evaluate every N steps (0: only before and after training)."""
    eval_samples: int = Field(4, ge=1)
    """Samples per eval task (pass@k needs k <= this)."""
    eval_temperature: float = Field(1.0, ge=0.0)
    eval_sampled: int = Field(0, ge=0)
    """Also evaluate with this many samples per task at temperature 1 (sampled accuracy, pass@k,
    maj@k; logged as ``eval_t1/*``) beside the eval_samples x eval_temperature evaluation, at
    the run's stages (before, after SFT, after RL; not at eval_every); 0: off. Greedy accuracy
    says what the policy's mode does, sampled accuracy what RL samples."""
    checkpoint_every: int = Field(10, ge=0)
    keep_last: int = Field(2, ge=1)
    save_trajectories: bool = True
    sft_first: bool = False
    """Run the SFT warm-up (the sft section) before RL."""


class RunConfig(_Section):
    name: str = "run"
    """The run's directory name under out_dir (no path separators)."""
    out_dir: str = "runs"

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not v or v in (".", "..") or "/" in v or "\\" in v or "\0" in v:
            raise ValueError("must be a plain directory name (no '/', not '.' or '..'); put the parent in run.out_dir")
        return v


class Config(_Section):
    run: RunConfig = RunConfig()
    model: ModelConfig = ModelConfig()
    task: TaskConfig = TaskConfig()
    tools: ToolsConfig = ToolsConfig()
    engine: EngineConfig = EngineConfig()
    rollout: RolloutConfig = RolloutConfig()
    reward: RewardConfig = RewardConfig()
    algo: AlgoConfig = AlgoConfig()
    strategy: StrategyConfig = StrategyConfig()
    optim: OptimConfig = OptimConfig()
    sft: SFTConfig = SFTConfig()
    train: TrainConfig = TrainConfig()
    rm: RMConfig = RMConfig()
    pareto: ParetoConfig = ParetoConfig()
    repair: RepairConfig = RepairConfig()
    flywheel: FlywheelConfig = FlywheelConfig()
    endpoints: dict[str, OpenAIEngineConfig] = {}
    """Named OpenAI-compatible servers (experts, judges, repairers, API models to evaluate),
    e.g. ``endpoints.judge.base_url=http://127.0.0.1:8000/v1``; other sections name one as
    ``openai:<name>``."""

    def endpoint(self, name: str) -> OpenAIEngineConfig:
        """The endpoint called ``name`` (``openai:`` prefix allowed), or a clear error."""
        key = name.removeprefix("openai:")
        if key not in self.endpoints:
            known = ", ".join(sorted(self.endpoints)) or "none configured"
            raise ConfigError(f"config error: no endpoint {key!r} in endpoints (known: {known})")
        return self.endpoints[key]

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        if self.reward.overlong_buffer > self.rollout.max_response_tokens:
            raise ValueError("reward.overlong_buffer must not exceed rollout.max_response_tokens")
        if self.rollout.group_size < 2 and self.algo.advantage in ("grpo", "dr_grpo", "rloo"):
            raise ValueError("rollout.group_size must be >= 2 for group-relative advantages")
        if self.engine.backend == "vllm" and self.engine.vllm.entropy_top_k == 0 and self.strategy.name in ("arpo", "elpo"):
            raise ValueError(f"strategy {self.strategy.name} branches on token entropies; with engine.backend=vllm set engine.vllm.entropy_top_k > 0")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name


class ConfigError(UserError, ValueError):
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


# On resume these sections are the run's identity: changing them would make the resumed steps a
# different algorithm, model or data than the checkpoint's, so they are refused.
RESUME_FIXED = ("algo", "strategy", "reward", "model", "task", "rollout", "sft", "run")


def resume_config(run_dir: Path, overrides: list[str] | None = None) -> tuple[Config, list[str]]:
    """The config to continue the run in ``run_dir``: its saved config.yaml with ``overrides``
    applied, placed in ``run_dir`` itself whatever run.out_dir/run.name it names (a copied or
    moved run continues where it is). Returns the config and one line per applied override
    (``optim.lr: 2e-06 -> 1e-05``); overrides of RESUME_FIXED sections are refused."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"config error: cannot resume {run_dir}: it has no config.yaml (is it a run directory?)")
    overrides = list(overrides or [])
    fixed = [o.split("=", 1)[0] for o in overrides if o.split("=", 1)[0].split(".")[0] in RESUME_FIXED]
    if fixed:
        raise ConfigError(f"config error: --resume continues the run as configured; {', '.join(fixed)} would change its "
                          f"{'/'.join(RESUME_FIXED)} (start a new run for that)")
    before = load_config(str(saved))
    cfg = load_config(str(saved), overrides)
    cfg.run.out_dir, cfg.run.name = str(run_dir.resolve().parent), run_dir.resolve().name
    applied = []
    for o in overrides:
        key = o.split("=", 1)[0]
        old, new = _get_path(before, key), _get_path(cfg, key)
        applied.append(f"{key}: {old!r} -> {new!r}" if old != new else f"{key}: {new!r} (unchanged)")
    return cfg, applied


def _get_path(cfg: BaseModel, dotted: str) -> Any:
    node: Any = cfg
    for k in dotted.split("."):
        node = node.get(k) if isinstance(node, dict) else getattr(node, k, None)
    return node


def save_config(cfg: Config, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
