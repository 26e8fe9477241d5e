"""Assemble the runtime pieces a config names: tools, protocol, engine, rewards, tasks.
Shared by the RL trainer, SFT and evaluation so every entry point builds them the same way."""

from __future__ import annotations

import asyncio
import concurrent.futures
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
from tirl.tools.checks import check_unique
from tirl.tools.custom import load_custom_tool
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
    """The run's tools: the built-ins it enables, then ``tools.custom`` and ``tools.mcp`` (a
    class that does not import or is not a Tool, an MCP server that does not start, two tools
    of one name: a one-line ``ToolSetupError``, raised before any model loads when the caller
    builds tools first). What was started before a failure is closed again."""
    t = cfg.tools
    tools: list[Tool] = []
    try:
        if t.python:
            tools.append(PythonSandbox(sandbox_config(cfg)))
        if t.calculator:
            tools.append(make_tool("calculator"))
        if t.search if t.search is not None else cfg.task.name == "lookup":
            tools.append(SearchTool(search_config(cfg)))
        tools += user_tools(cfg)
        check_unique(tools)
    except BaseException:
        close_tools(tools)
        raise
    return tools


def user_tools(cfg: Config) -> list[Tool]:
    """The tools the user brings: ``tools.custom`` classes and the tools of ``tools.mcp`` servers."""
    tools: list[Tool] = []
    try:
        for i, c in enumerate(cfg.tools.custom):
            tools.append(load_custom_tool(c.target, c.kwargs, where=f"config error: tools.custom[{i}]"))
        for i, m in enumerate(cfg.tools.mcp):
            from tirl.tools.mcp import MCPServerConfig, open_mcp_tools  # the mcp SDK loads only when a server is configured

            tools += open_mcp_tools(MCPServerConfig(**m.model_dump()), where=f"tools.mcp[{i}]")
    except BaseException:
        close_tools(tools)
        raise
    return tools


def close_tools(tools: list[Tool]) -> None:
    """Close tools from synchronous code (a failed start-up), each once, best effort."""

    async def close_all() -> None:
        for tool in tools:
            try:
                await tool.aclose()
            except Exception:  # noqa: BLE001 - closing is best effort; the error being raised matters more
                pass

    if tools:
        # a thread of its own: this may run where an event loop is already running
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, close_all()).result()


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
    """``n`` tasks of ``split``; ``split="train"`` asks for training tasks, which come from
    ``task.split`` (the name of a Hugging Face dataset's training split)."""
    t = cfg.task
    opts: dict = {"difficulty": t.difficulty} if t.difficulty is not None and t.name in ("arith", "lookup") else {}
    if t.is_hf:
        opts.update(path=t.path, subset=t.subset, preset=t.preset)
    if t.is_hf or t.is_file:
        opts.update(t.field_options())
    return load_tasks(t.name, n=n, seed=t.seed, split=t.split if split == "train" else split, **opts)


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


def build_runtime(cfg: Config, model, tokenizer, seed: int, tools: list[Tool] | None = None) -> Runtime:
    """The engine, tools and protocol of a run; ``tools`` already built (``build_tools``, called
    before the model loads so a bad tool fails first) or None to build them here."""
    engine = build_engine(cfg.engine.model_copy(update={"seed": seed}), model, tokenizer)
    ctx = engine.max_context
    if ctx is not None and cfg.rollout.max_response_tokens >= ctx:
        raise ConfigError(
            f"config error: rollout.max_response_tokens={cfg.rollout.max_response_tokens} leaves no room for a prompt "
            f"in the model's context of {ctx} tokens; set it below {ctx}"
        )
    tools = build_tools(cfg) if tools is None else tools
    protocol = make_protocol(cfg.tools.protocol, tools, tokenizer)
    return Runtime(tools=tools, protocol=protocol, engine=engine)


def fit(rt: Runtime, tasks: list[Task]) -> Fit:
    """The tasks whose prompt fits the engine's context (``Fit.note()`` says what was skipped)."""
    return fit_tasks(tasks, rt.protocol, rt.engine.tokenizer, rt.engine.max_context)
