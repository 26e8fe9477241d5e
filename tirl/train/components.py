"""Assemble the runtime pieces a config names: tools, protocol, engine, rewards, tasks.
Shared by the RL trainer, SFT and evaluation so every entry point builds them the same way."""

from __future__ import annotations

from dataclasses import dataclass

from tirl.config import Config, ConfigError, RolloutConfig
from tirl.engine.base import Engine
from tirl.engine.factory import build_engine
from tirl.protocol import Protocol, make_protocol
from tirl.rewards.base import RewardSpec
from tirl.rewards.presets import config_rewards
from tirl.rewards.schedule import Progress
from tirl.rollout.fit import Fit, fit_tasks
from tirl.tasks import load_tasks
from tirl.tools import PythonSandbox, SandboxConfig, make_tool
from tirl.tools.base import Tool
from tirl.tools.search import SearchConfig, SearchTool
from tirl.types import Task


def sandbox_config(cfg: Config) -> SandboxConfig:
    """The sandbox's own dataclass from the ``tools.sandbox`` section (same fields, same limits;
    the sandbox does not import tirl's config, so the conversion lives here)."""
    return SandboxConfig(**cfg.tools.sandbox.model_dump())


def search_config(cfg: Config) -> SearchConfig:
    """The search tool's own dataclass from ``tools.retrieval``. A run on ``lookup`` that names no
    corpus, index or server searches the task's generated corpus (``tirl.tasks.lookup``)."""
    r = cfg.tools.retrieval.model_dump()
    if not (r["corpus"] or r["index"] or r["url"]):
        if cfg.task.name != "lookup":
            raise ConfigError("config error: tools.search=true needs tools.retrieval.corpus, tools.retrieval.index or tools.retrieval.url")
        from tirl.tasks.lookup import corpus_path

        r["corpus"] = str(corpus_path(cfg.task.seed))
    return SearchConfig(**r)


def build_tools(cfg: Config) -> list[Tool]:
    t = cfg.tools
    tools: list[Tool] = []
    if t.python:
        tools.append(PythonSandbox(sandbox_config(cfg)))
    if t.calculator:
        tools.append(make_tool("calculator"))
    if t.search if t.search is not None else cfg.task.name == "lookup":
        tools.append(SearchTool(search_config(cfg)))
    return tools


def rollout_config(cfg: Config, temperature: float | None = None) -> RolloutConfig:
    return cfg.rollout if temperature is None else cfg.rollout.model_copy(update={"temperature": temperature})


def rewards(cfg: Config, protocol: Protocol, progress: Progress | None = None) -> list[RewardSpec]:
    """The run's reward specs; ``progress`` (owned by the trainer) drives scheduled rewards
    (ET-Agent's σ decay). A configured reward model is loaded here, once."""
    scorer = None
    if cfg.reward.rm.path:
        from tirl.rm.model import RewardModelScorer

        scorer = RewardModelScorer.load(cfg.reward.rm.path, batch_size=cfg.reward.rm.batch_size)
    return config_rewards(cfg.reward, protocol, cfg.rollout.max_response_tokens, progress, scorer)


def tasks(cfg: Config, split: str, n: int) -> list[Task]:
    opts = {"difficulty": cfg.task.difficulty} if cfg.task.difficulty is not None and cfg.task.name in ("arith", "lookup") else {}
    return load_tasks(cfg.task.name, n=n, seed=cfg.task.seed, split=split, **opts)


@dataclass
class Runtime:
    """The pieces a rollout needs, built once per run."""

    tools: list[Tool]
    protocol: Protocol
    engine: Engine  # HFEngine or VLLMEngine (engine.backend)

    async def aclose(self) -> None:
        """Stop the tools' processes, then the engine (a vLLM core, an HTTP client's connections):
        everything the run started ends with it, even when a tool fails to close."""
        try:
            for t in self.tools:
                await t.aclose()
        finally:
            self.engine.close()


def build_runtime(cfg: Config, model, tokenizer, seed: int) -> Runtime:
    engine = build_engine(cfg.engine.model_copy(update={"seed": seed}), model, tokenizer)
    ctx = engine.max_context
    if ctx is not None and cfg.rollout.max_response_tokens >= ctx:
        raise ConfigError(
            f"config error: rollout.max_response_tokens={cfg.rollout.max_response_tokens} leaves no room for a prompt "
            f"in the model's context of {ctx} tokens; set it below {ctx}"
        )
    tools = build_tools(cfg)
    protocol = make_protocol(cfg.tools.protocol, tools, tokenizer)
    return Runtime(tools=tools, protocol=protocol, engine=engine)


def fit(rt: Runtime, tasks: list[Task]) -> Fit:
    """The tasks whose prompt fits the engine's context (``Fit.note()`` says what was skipped)."""
    return fit_tasks(tasks, rt.protocol, rt.engine.tokenizer, rt.engine.max_context)
