"""The one typed config tree. Recipes are YAML files of these fields; the command line
overrides any field with ``section.field=value``; the resolved tree is saved in every run.

Defaults run on a CPU in minutes with SmolLM2-135M-Instruct on ``arith``.

One module per section (``model``, ``task``, ``tools``, ``engine``, ``endpoints``, ``rollout``,
``reward``, ``algo``, ``strategy``, ``optim``, ``train`` (run, train, sft), ``rm``, ``curate``
(pareto, repair, flywheel), ``log`` (tracking backends, the report), ``cluster``), the tree (``root``)
and loading (``load``). Every module imports only pydantic, yaml, the standard library and ``tirl.errors``: engine/, rollout/ and train/
read their sections from here, never the other way round, so ``import tirl.config`` does not
load torch, the engines or the sandbox (docs/DESIGN.md, "Configuration and CLI";
``tests/test_import_graph.py`` holds both).
"""

from tirl.config.algo import AlgoConfig
from tirl.config.base import ConfigError, Section
from tirl.config.cluster import ClusterConfig
from tirl.config.curate import FlywheelConfig, ParetoConfig, RepairConfig
from tirl.config.endpoints import OpenAIEngineConfig
from tirl.config.engine import EngineConfig, HFEngineConfig, VLLMEngineConfig
from tirl.config.load import RECIPES_DIR, RESUME_FIXED, load_config, parse_overrides, recipe_path, resume_config, save_config
from tirl.config.log import LogConfig, MLflowSection, ReportSection, WandbSection
from tirl.config.model import LoraConfig, ModelConfig
from tirl.config.optim import OptimConfig
from tirl.config.reward import EfficiencyRewardConfig, RewardConfig, RMRewardConfig
from tirl.config.rm import RMConfig
from tirl.config.rollout import RolloutConfig
from tirl.config.root import Config
from tirl.config.search import RetrievalSection
from tirl.config.strategy import ARPOConfig, E3Config, ELPOConfig, StrategyConfig
from tirl.config.task import TaskConfig
from tirl.config.tool_sources import CustomToolSection, MCPServerSection
from tirl.config.tools import SANDBOX_ALIASES, SandboxSection, ToolsConfig
from tirl.config.train import RunConfig, SFTConfig, TrainConfig

__all__ = [
    "ARPOConfig",
    "AlgoConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "CustomToolSection",
    "E3Config",
    "ELPOConfig",
    "EfficiencyRewardConfig",
    "EngineConfig",
    "FlywheelConfig",
    "HFEngineConfig",
    "LogConfig",
    "LoraConfig",
    "MCPServerSection",
    "MLflowSection",
    "ModelConfig",
    "OpenAIEngineConfig",
    "OptimConfig",
    "ParetoConfig",
    "RECIPES_DIR",
    "RESUME_FIXED",
    "RMConfig",
    "RMRewardConfig",
    "RepairConfig",
    "ReportSection",
    "RetrievalSection",
    "RewardConfig",
    "RolloutConfig",
    "RunConfig",
    "SANDBOX_ALIASES",
    "SFTConfig",
    "SandboxSection",
    "Section",
    "StrategyConfig",
    "TaskConfig",
    "ToolsConfig",
    "TrainConfig",
    "VLLMEngineConfig",
    "WandbSection",
    "load_config",
    "parse_overrides",
    "recipe_path",
    "resume_config",
    "save_config",
]
