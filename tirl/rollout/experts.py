"""Expert sources: where an expert trajectory for a task comes from (E3-TIR's expert prefixes and
expert-guided samples, ALGORITHMS.md §5; usable by any recipe that learns from demonstrations).

One interface, ``ExpertSource.solve(tasks, protocol, tokenizer) -> [Trajectory | None]``, three
kinds of source:

- ``ReferenceExperts`` — the built-in reference solver of a synthetic task (``arith``,
  ``lookup``; ``tirl.tasks.reference``): its scripted solution is executed by tirl's tools
  (``tirl.rollout.script.script_trajectory``).
- ``FileExperts`` — a JSONL of trajectories in the rollout schema (``tirl.rollout.io``), e.g. an
  earlier run's ``trajectories/*.jsonl`` or an expert set written by a stronger model; the
  first trajectory of each task (the first correct one with ``correct_only``).
- ``EngineExperts`` — any model behind an ``Engine``: an OpenAI-compatible endpoint
  (``OpenAIEngine``) or a local model (``HFEngine``). The expert writes each turn; tirl's agent
  loop parses its tool calls and runs them with tirl's own tools, so every observation in the
  trajectory is real.

Every trajectory returned is in the policy's token space (prompt rendered by the policy's
protocol and tokenizer) and its assistant turns are EXPERT segments: in context, never trained
by the on-policy ratio (``tirl.rollout.masks``). An expert whose tokenizer differs from the
policy's has each of its segments decoded and re-tokenised, segment by segment, exactly as tool
observations are (an expert's ids are not the policy's samples, so nothing is lost). ``None``
means the source has no trajectory for that task (not in the file, or the run stopped on an
infrastructure error). Whether a trajectory is correct is the caller's business (``correct``).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol as TypingProtocol

from tirl.engine.base import Engine
from tirl.protocol.base import Protocol
from tirl.rewards.verify import score_answer
from tirl.rollout.agent_loop import (
    RolloutConfig,
    run_states,
    start_states,
    trajectory_metrics,
)
from tirl.rollout.io import read_jsonl
from tirl.rollout.script import script_trajectory
from tirl.types import Origin, Segment, StopReason, Task, Trajectory


class ExpertSource(TypingProtocol):
    name: str

    async def solve(self, tasks: Sequence[Task], protocol: Protocol, tokenizer) -> list[Trajectory | None]: ...

    async def aclose(self) -> None: ...


def as_expert(traj: Trajectory) -> Trajectory:
    """A copy whose POLICY segments are EXPERT segments (their log-probs stay: the expert's own)."""
    out = copy.deepcopy(traj)
    out.segments = [Segment(Origin.EXPERT, s.token_ids, s.logprobs, s.entropy) if s.origin is Origin.POLICY else s for s in out.segments]
    out.metrics = {**out.metrics, **trajectory_metrics(out)}
    return out


def correct(task: Task, traj: Trajectory | None) -> bool:
    """The verifier scores the trajectory's answer as correct and it did not stop on an error."""
    return traj is not None and traj.stop_reason is not StopReason.ERROR and score_answer(task, traj.answer) >= 1.0


def expert_tokens(traj: Trajectory) -> int:
    return sum(len(s) for s in traj.segments if s.origin is Origin.EXPERT)


class ReferenceExperts:
    """The reference solver of each task's source (``tirl.tasks.reference``)."""

    name = "reference"

    def __init__(self, concurrency: int = 8):
        self.concurrency = concurrency

    async def solve(self, tasks: Sequence[Task], protocol: Protocol, tokenizer) -> list[Trajectory | None]:
        from tirl.tasks.reference import SOLVERS, check, has_solver, reference_solution

        bad = [t.id for t in tasks if not has_solver(t)]
        if bad:
            raise ValueError(
                f"the reference expert solves {', '.join(SOLVERS)} tasks only; got {bad[:3]} (use a JSONL file or a model as the expert)"
            )
        sem = asyncio.Semaphore(self.concurrency)

        async def one(task: Task) -> Trajectory | None:
            async with sem:
                tr = await script_trajectory(task, reference_solution(task), protocol, tokenizer)
            return None if tr.stop_reason is StopReason.ERROR or check(task, tr) is not None else tr

        return list(await asyncio.gather(*(one(t) for t in tasks)))

    async def aclose(self) -> None:
        pass


class FileExperts:
    """Trajectories from a rollout-schema JSONL, keyed by task id. The file's ids must be the
    policy's: its prompt ids are checked against the policy's rendering of the task."""

    def __init__(self, path: str | Path, correct_only: bool = True):
        self.path = Path(path)
        self.name = f"file:{self.path.name}"
        if not self.path.exists():
            raise FileNotFoundError(f"expert file {self.path} does not exist")
        self.by_task: dict[str, Trajectory] = {}
        for tr in read_jsonl(self.path):
            if tr.task_id in self.by_task or tr.stop_reason is StopReason.ERROR:
                continue
            if correct_only and "correct" in tr.rewards and tr.rewards["correct"] < 1.0:
                continue
            self.by_task[tr.task_id] = tr
        if not self.by_task:
            raise ValueError(
                f"expert file {self.path} holds no usable trajectory" + (" (correct_only: none has rewards.correct = 1)" if correct_only else "")
            )

    async def solve(self, tasks: Sequence[Task], protocol: Protocol, tokenizer) -> list[Trajectory | None]:
        out: list[Trajectory | None] = []
        for task in tasks:
            tr = self.by_task.get(task.id)
            if tr is None:
                out.append(None)
                continue
            want = protocol.prompt_ids(tokenizer, task)
            if tr.prompt_token_ids != want:
                raise ValueError(
                    f"expert file {self.path}: task {task.id!r} has a prompt of {len(tr.prompt_token_ids)} ids that differs from the policy's "
                    f"({len(want)} ids); the file was written with another tokenizer, protocol or system prompt"
                )
            ex = as_expert(tr)
            ex.gold = task.answer
            out.append(ex)
        return out

    async def aclose(self) -> None:
        pass


def same_vocab(a, b) -> bool:
    return a is b or a.get_vocab() == b.get_vocab()


class EngineExperts:
    """A model behind an Engine writes the trajectory through tirl's agent loop (its tool calls
    run on tirl's tools). ``rollout`` sets its sampling (temperature, token budget, tool cap)."""

    def __init__(self, engine: Engine, rollout: RolloutConfig, name: str = "engine", owns_engine: bool = False):
        if engine.tokenizer is None:
            raise ValueError(f"expert {name}: the engine needs the expert model's tokenizer (for an endpoint, set endpoints.<name>.tokenizer)")
        self.name = name
        self.engine = engine
        self.rollout = rollout.model_copy(update={"group_size": 1})
        self.owns_engine = owns_engine

    async def solve(self, tasks: Sequence[Task], protocol: Protocol, tokenizer) -> list[Trajectory | None]:
        etok = self.engine.tokenizer
        states = start_states(protocol, etok, tasks, 1)
        trajs = await run_states(self.engine, protocol, states, self.rollout)
        retok = not same_vocab(etok, tokenizer)
        out: list[Trajectory | None] = []
        for task, tr in zip(tasks, trajs):
            if tr.stop_reason is StopReason.ERROR:
                out.append(None)
                continue
            ex = as_expert(tr)
            prompt = protocol.prompt_ids(tokenizer, task)  # the policy's rendering of the task
            ex = retokenise(ex, prompt, etok, tokenizer) if retok else _with_prompt(ex, prompt)
            out.append(ex)
        return out

    async def aclose(self) -> None:
        if self.owns_engine:
            self.engine.close()


def _with_prompt(traj: Trajectory, prompt_ids: list[int]) -> Trajectory:
    """The policy's prompt ids in place of the expert's (a model with the same vocabulary may
    render the chat template differently); the segments' ids are valid for both."""
    traj.prompt_token_ids = list(prompt_ids)
    return traj


def retokenise(traj: Trajectory, prompt_ids: list[int], src_tok, dst_tok) -> Trajectory:
    """``traj`` (ids of ``src_tok``) in ``dst_tok``'s ids: each segment decoded and encoded on its
    own (step structure kept); an EOS of the source becomes the destination's EOS."""
    src_eos = {src_tok.eos_token_id} if src_tok.eos_token_id is not None else set()
    out = copy.deepcopy(traj)
    out.prompt_token_ids = list(prompt_ids)
    segs = []
    for s in traj.segments:
        ids = list(s.token_ids)
        ended = bool(ids) and ids[-1] in src_eos
        body = src_tok.decode(ids[:-1] if ended else ids, skip_special_tokens=False)
        new = list(dst_tok(body, add_special_tokens=False)["input_ids"])
        if ended:
            new.append(dst_tok.eos_token_id)
        segs.append(Segment(s.origin, new))  # the source's log-probs and entropies belong to other ids
    out.segments = segs
    out.text = dst_tok.decode(out.completion_ids, skip_special_tokens=False)
    out.metrics = {**out.metrics, **trajectory_metrics(out)}
    return out


def make_expert_source(
    spec: str, *, rollout: RolloutConfig, policy_engine: Engine | None = None, endpoints=None, seed: int = 0, correct_only: bool = True
) -> ExpertSource:
    """The source a config names: ``reference`` (or ``arith-reference``); a ``.jsonl`` path; ``openai:<name>`` (an
    endpoint of the ``endpoints`` section; its tokenizer is the endpoint's, else the policy's);
    or a local model (alias, directory or hub id) run by an in-process HFEngine."""
    from tirl.tasks.reference import is_reference

    if is_reference(spec):
        return ReferenceExperts()
    if spec.endswith(".jsonl"):
        return FileExperts(spec, correct_only=correct_only)
    if spec.startswith(("http://", "https://")):
        raise ValueError(f"expert {spec!r}: name a configured endpoint instead, e.g. endpoints.expert.base_url={spec} and openai:expert")
    if spec.startswith("openai:"):
        if endpoints is None:
            raise ValueError(f"expert {spec!r}: no endpoints configured to resolve it")
        from tirl.engine.openai import OpenAIEngine

        cfg = endpoints(spec)
        if cfg.tokenizer is None and policy_engine is None:
            raise ValueError(f"expert {spec!r}: set the endpoint's tokenizer (the server model's)")
        engine = OpenAIEngine.from_config(cfg, tokenizer=None if cfg.tokenizer else policy_engine.tokenizer)
        return EngineExperts(engine, rollout, name=spec, owns_engine=True)
    from tirl.engine import HFEngine, HFEngineConfig
    from tirl.models import load_model

    lm = load_model(spec)
    lm.model.eval()
    return EngineExperts(HFEngine(lm.model, lm.tokenizer, HFEngineConfig(seed=seed)), rollout, name=spec, owns_engine=True)
