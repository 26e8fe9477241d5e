"""The agent loop: generate → parse → run tool calls → append observation tokens → continue.

Every trajectory is built from token ids only: the engine's sampled ids become a POLICY
segment, the observation text (rendered by the protocol, tokenised by us) a TOOL segment.
The ids the model saw are exactly prompt + segments (DESIGN.md invariant 2). Tool calls of all
trajectories waiting on a tool run concurrently. A trajectory stops on a closed answer, EOS,
the tool-call cap (ALGORITHMS.md §1: at the cap the trajectory stops), or the token budget.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from tirl.engine.base import Engine, FinishReason, GenerationRequest, SamplingParams
from tirl.protocol.base import Protocol
from tirl.tools.base import Tool
from tirl.types import Observation, Origin, Segment, Step, StopReason, Task, ToolCall, Trajectory


class RolloutConfig(BaseModel):
    """How trajectories are sampled (the ``rollout`` section of the config)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    group_size: int = Field(4, ge=1)
    """Samples per task (G)."""
    max_tool_calls: int = Field(4, ge=0)
    """Tool calls allowed per trajectory; a further call stops the trajectory (stop reason tool_cap)."""
    max_response_tokens: int = Field(384, ge=1)
    """Token budget after the prompt: policy and tool tokens together."""
    max_turn_tokens: int = Field(256, ge=1)
    """At most this many tokens per generation call (one assistant turn)."""
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    void_turn_filter: bool = False
    """SimpleTIR (Xue et al. 2025): a turn that ends (EOS) with neither a tool call nor an
    answer is a void turn; it stops the trajectory (stop reason void_turn), whose loss mask is
    then zero. It still counts in group statistics."""


@dataclass
class _State:
    traj: Trajectory
    session: str
    policy_text: list[str]
    done: bool = False


def _finish(st: _State, reason: StopReason) -> None:
    st.traj.stop_reason = reason
    st.done = True


async def _run_call(call: ToolCall, tools: Mapping[str, Tool], protocol: Protocol, session: str) -> Observation:
    """A malformed call is answered by the protocol's error text; a tool that raises is an
    infrastructure failure (tools report the model's errors as observations, never by raising)."""
    if call.error is not None:
        return protocol.error_observation(call)
    t0 = time.perf_counter()
    try:
        obs = await tools[call.name].run(call, session)
    except Exception as e:  # noqa: BLE001 - turned into an infra observation, counted, never scored
        return Observation(ok=False, output=f"Error: tool {call.name!r} failed ({type(e).__name__}: {e})", error=type(e).__name__, infra_error=True, latency_ms=(time.perf_counter() - t0) * 1e3)
    return obs


async def rollout(
    engine: Engine,
    protocol: Protocol,
    tasks: Sequence[Task],
    cfg: RolloutConfig,
    on_finished: Callable[[int], None] | None = None,
) -> list[list[Trajectory]]:
    """Roll out ``cfg.group_size`` trajectories per task; returns one group per task."""
    tok = engine.tokenizer
    tools = protocol.tools
    states: list[_State] = []
    for task in tasks:
        prompt_ids = protocol.prompt_ids(tok, task)
        for g in range(cfg.group_size):
            traj = Trajectory(task_id=task.id, sample=g, prompt_token_ids=list(prompt_ids), gold=task.answer)
            states.append(_State(traj=traj, session=f"{task.id}/{g}/{uuid.uuid4().hex[:8]}", policy_text=[]))
    stops = protocol.stop_strings()
    try:
        while active := [s for s in states if not s.done]:
            reqs = []
            for st in active:
                left = cfg.max_response_tokens - len(st.traj.completion_ids)
                sp = SamplingParams(cfg.temperature, cfg.top_p, cfg.top_k, max(1, min(cfg.max_turn_tokens, left)), stops)
                reqs.append(GenerationRequest(st.traj.token_ids, sp))
            comps = engine.generate(reqs)
            waiting: list[tuple[_State, ToolCall]] = []
            for st, c in zip(active, comps):
                st.traj.segments.append(Segment(Origin.POLICY, c.token_ids, c.logprobs, c.entropy))
                text = tok.decode(c.token_ids, skip_special_tokens=False)
                st.policy_text.append(text)
                parsed = protocol.parse_turn(text, ended_by_eos=c.finish_reason is FinishReason.EOS)
                action = len(st.traj.segments) - 1
                if parsed.call is not None:
                    if st.traj.n_tool_calls >= cfg.max_tool_calls:
                        st.traj.steps.append(Step(action_segment=action))
                        st.traj.metrics["tool_cap_hit"] = 1.0
                        _finish(st, StopReason.TOOL_CAP)
                    else:
                        waiting.append((st, parsed.call))
                elif parsed.final:
                    st.traj.steps.append(Step(action_segment=action))
                    st.traj.answer = parsed.answer
                    closed = c.finish_reason is FinishReason.STOP_STRING or protocol.final_turn_ends_with_eos
                    if closed and parsed.answer is not None:
                        _finish(st, StopReason.ANSWER)
                    else:
                        _finish(st, StopReason.VOID_TURN if cfg.void_turn_filter and parsed.answer is None else StopReason.EOS)
                else:
                    st.traj.steps.append(Step(action_segment=action))
                    _finish(st, StopReason.LENGTH)
            observations = await asyncio.gather(*(_run_call(call, tools, protocol, st.session) for st, call in waiting))
            for (st, call), obs in zip(waiting, observations):
                obs_ids = list(tok(protocol.observation_text(call, obs), add_special_tokens=False)["input_ids"])
                st.traj.segments.append(Segment(Origin.TOOL, obs_ids))
                st.traj.steps.append(Step(action_segment=len(st.traj.segments) - 2, call=call, observation=obs, tool_segment=len(st.traj.segments) - 1))
                if obs.infra_error:
                    _finish(st, StopReason.ERROR)
                elif len(st.traj.completion_ids) >= cfg.max_response_tokens:
                    _finish(st, StopReason.LENGTH)
            if on_finished is not None:
                on_finished(sum(1 for s in active if s.done))
    finally:
        for st in states:
            for t in tools.values():
                try:
                    await t.close_session(st.session)
                except Exception:  # noqa: BLE001 - closing is best effort; the pool reaps workers
                    pass
    for st in states:
        tr = st.traj
        if tr.answer is None:
            tr.answer = protocol.extract_answer("".join(st.policy_text))
        tr.text = tok.decode(tr.completion_ids, skip_special_tokens=False)
        tr.metrics.update(trajectory_metrics(tr))
    G = cfg.group_size
    return [[s.traj for s in states[i * G : (i + 1) * G]] for i in range(len(tasks))]


def trajectory_metrics(tr: Trajectory) -> dict[str, float]:
    calls = [s for s in tr.steps if s.call is not None]
    return {
        "tool_calls": float(len(calls)),
        "tool_errors": float(sum(1 for s in calls if s.observation is not None and not s.observation.ok)),
        "malformed_calls": float(sum(1 for s in calls if s.call.error is not None)),
        "policy_tokens": float(tr.n_policy_tokens),
        "tool_tokens": float(sum(len(s) for s in tr.segments if s.origin is Origin.TOOL)),
    }
