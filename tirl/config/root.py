"""``Config``: the whole tree, one field per section, and the checks that span sections."""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator

from tirl.config.algo import AlgoConfig
from tirl.config.base import ConfigError, Section
from tirl.config.cluster import ClusterConfig
from tirl.config.curate import FlywheelConfig, ParetoConfig, RepairConfig
from tirl.config.endpoints import OpenAIEngineConfig
from tirl.config.engine import EngineConfig
from tirl.config.log import LogConfig
from tirl.config.model import ModelConfig
from tirl.config.optim import OptimConfig
from tirl.config.reward import RewardConfig
from tirl.config.rm import RMConfig
from tirl.config.rollout import RolloutConfig
from tirl.config.strategy import StrategyConfig
from tirl.config.task import TaskConfig
from tirl.config.tools import ToolsConfig
from tirl.config.train import RunConfig, SFTConfig, TrainConfig


class Config(Section):
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
    log: LogConfig = LogConfig()
    cluster: ClusterConfig = ClusterConfig()
    """Where rollouts and the update run (inline by default; Ray, torch.distributed)."""
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
    def _consistent(self) -> Config:
        if self.reward.overlong_buffer > self.rollout.max_response_tokens:
            raise ValueError("reward.overlong_buffer must not exceed rollout.max_response_tokens")
        if self.rollout.group_size < 2 and self.algo.advantage in ("grpo", "dr_grpo", "rloo"):
            raise ValueError("rollout.group_size must be >= 2 for group-relative advantages")
        if self.engine.backend == "vllm" and self.engine.vllm.entropy_top_k == 0 and self.strategy.name in ("arpo", "elpo"):
            raise ValueError(f"strategy {self.strategy.name} branches on token entropies; with engine.backend=vllm set engine.vllm.entropy_top_k > 0")
        if self.strategy.name == "elpo" and self.algo.advantage != "grpo":
            raise ValueError(
                f"strategy elpo computes its own hierarchical advantage (strategy.elpo.lam) and does not read algo.advantage; leave it at grpo, not {self.algo.advantage}"
            )
        c = self.cluster
        if c.max_staleness > 0 and (self.rollout.temperature != 1.0 or self.rollout.top_p != 1.0 or self.rollout.top_k != 0):
            # the behaviour log-probs are those of the processed sampling distribution; the
            # importance weight needs the policy's own (temperature 1, no truncation)
            raise ValueError(
                "cluster.max_staleness > 0 weights tokens by pi/pi_behaviour, which needs rollout.temperature=1, top_p=1 and top_k=0 "
                f"(got {self.rollout.temperature:g}, {self.rollout.top_p:g}, {self.rollout.top_k})"
            )
        if c.parallel == "fsdp" and self.model.lora.enabled:
            raise ValueError("cluster.parallel=fsdp shards the full model; with model.lora.enabled use cluster.parallel=ddp")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name
