"""The agent loop: generate → parse → run tool calls → append observation tokens → continue.

Every trajectory is built from token ids only: the engine's sampled ids become a POLICY
segment, the observation text (rendered by the protocol, tokenised by us) a TOOL segment.
The ids the model saw are exactly prompt + segments (DESIGN.md invariant 2). Tool calls of all
trajectories waiting on a tool run concurrently. A trajectory stops on a closed answer, EOS,
the tool-call cap (ALGORITHMS.md §1: at the cap the trajectory stops), the token budget, or the
model's context (``engine.max_context``: the conversation fills it; stop reason LENGTH).

The loop works on ``LoopState``s, one per trajectory in flight, and is exposed in pieces so
rollout strategies (flat groups, ARPO branching, ELPO binary search) share it:

- ``start_states`` makes fresh states from tasks' prompts;
- ``continue_states`` makes states that continue partial trajectories (a prompt and the
  segments of their first n steps, cut at a step boundary, see ``prefix_trajectory``); the
  tool state of the prefix is restored first by re-running its calls in a new session
  (notebook semantics: a continuation must see the variables its prefix defined);
- ``advance`` runs one round (one generation for every live state, then their tool calls);
  after it, every state that is not done has just received a tool observation, which is the
  point where a branching strategy may fork it;
- ``run_states`` advances until all are done, then ``finalize``s them and closes their sessions.

``rollout`` (flat groups) and ``continue_from`` (continuations of given prefixes) are the two
entry points built from these.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tirl.config.rollout import RolloutConfig
from tirl.engine.base import Engine, FinishReason, GenerationRequest, SamplingParams
from tirl.protocol.base import Protocol
from tirl.tools.base import Tool
from tirl.types import Observation, Origin, Segment, Step, StopReason, Task, ToolCall, Trajectory

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    """One trajectory in flight: the trajectory so far, its tool session, the decoded text of
    its own turns (the answer is extracted from it), and whether it has stopped."""

    traj: Trajectory
    session: str
    policy_text: list[str]
    done: bool = False
    seed: int | None = None  # base of this trajectory's per-turn sampling seeds


def _finish(st: LoopState, reason: StopReason) -> None:
    st.traj.stop_reason = reason
    st.done = True


def _fail(st: LoopState, what: str, exc: BaseException) -> None:
    """A failure of one trajectory's loop (not of the model's text, which never raises) stops
    that trajectory with stop reason ERROR and says what failed; the batch goes on."""
    st.traj.error = f"{what}: {type(exc).__name__}: {str(exc)[:300]}"
    log.warning("trajectory %s/%s stopped: %s", st.traj.task_id, st.traj.sample, st.traj.error)
    _finish(st, StopReason.ERROR)


def _session(task_id: str, sample: int) -> str:
    return f"{task_id}/{sample}/{uuid.uuid4().hex[:8]}"


async def _run_call(call: ToolCall, tools: Mapping[str, Tool], protocol: Protocol, session: str) -> Observation:
    """A malformed call is answered by the protocol's error text; a tool that raises is an
    infrastructure failure (tools report the model's errors as observations, never by raising)."""
    if call.error is not None:
        return protocol.error_observation(call)
    t0 = time.perf_counter()
    try:
        obs = await tools[call.name].run(call, session)
    except Exception as e:  # noqa: BLE001 - turned into an infra observation, counted, never scored
        return Observation(
            ok=False,
            output=f"Error: tool {call.name!r} failed ({type(e).__name__}: {e})",
            error=type(e).__name__,
            infra_error=True,
            latency_ms=(time.perf_counter() - t0) * 1e3,
        )
    return obs


def start_states(protocol: Protocol, tokenizer, tasks: Sequence[Task], group_size: int, first_sample: int = 0) -> list[LoopState]:
    """``group_size`` fresh states per task (task-major order), samples numbered from ``first_sample``."""
    states = []
    for task in tasks:
        prompt_ids = protocol.prompt_ids(tokenizer, task)
        for g in range(first_sample, first_sample + group_size):
            traj = Trajectory(task_id=task.id, sample=g, prompt_token_ids=list(prompt_ids), gold=task.answer)
            states.append(LoopState(traj=traj, session=_session(task.id, g), policy_text=[]))
    return states


def prefix_trajectory(traj: Trajectory, n_steps: int, sample: int | None = None) -> Trajectory:
    """A new trajectory holding ``traj``'s prompt and its first ``n_steps`` steps (each step's
    action segment and the tool segment that answered it), copied; nothing of the outcome
    (answer, stop reason, rewards, metrics) is kept. Its ids are a prefix of ``traj``'s ids.

    The cut must be a step boundary after which the model generates again: every kept step
    but the first ``n_steps`` ends in a tool observation.
    """
    if not 0 <= n_steps <= len(traj.steps):
        raise ValueError(f"cannot keep {n_steps} steps of a trajectory with {len(traj.steps)} steps")
    kept = traj.steps[:n_steps]
    if any(s.tool_segment is None for s in kept):
        raise ValueError(
            f"a prefix of {n_steps} steps must end after a tool observation; trajectory {traj.task_id}/{traj.sample} has a step without one among them"
        )
    n_segments = kept[-1].tool_segment + 1 if kept else 0
    return Trajectory(
        task_id=traj.task_id,
        sample=traj.sample if sample is None else sample,
        prompt_token_ids=list(traj.prompt_token_ids),
        segments=copy.deepcopy(traj.segments[:n_segments]),
        steps=copy.deepcopy(kept),
        gold=traj.gold,
    )


async def restore_tool_state(states: Sequence[LoopState], protocol: Protocol) -> None:
    """Re-run every well-formed tool call of each state's trajectory, in order, in the state's
    own session, discarding the outputs: the session then holds the variables the prefix
    defined. The observation tokens stay those of the prefix (never re-rendered). A replay that
    hits an infrastructure failure stops the state with stop reason ``error``."""

    async def one(st: LoopState) -> None:
        n = 0
        for step in st.traj.steps:
            if step.call is None or step.call.error is not None:
                continue
            obs = await _run_call(step.call, protocol.tools, protocol, st.session)
            n += 1
            if obs.infra_error:
                _finish(st, StopReason.ERROR)
                break
        st.traj.metrics["replayed_calls"] = float(n)

    await asyncio.gather(*(one(st) for st in states if st.traj.steps))


async def continue_states(protocol: Protocol, tokenizer, prefixes: Sequence[Trajectory]) -> list[LoopState]:
    """States that continue the given partial trajectories (each used as is, not copied: pass
    ``prefix_trajectory`` results), with their tool state restored."""
    states = []
    for tr in prefixes:
        if tr.stop_reason is not None:
            raise ValueError(f"trajectory {tr.task_id}/{tr.sample} has stopped ({tr.stop_reason.value}); continue a prefix_trajectory of it instead")
        if tr.steps and tr.steps[-1].tool_segment is None:
            raise ValueError(f"trajectory {tr.task_id}/{tr.sample} does not end at a tool observation; the model cannot continue it")
        text = [tokenizer.decode(s.token_ids, skip_special_tokens=False) for s in tr.segments if s.origin in (Origin.POLICY, Origin.EXPERT)]
        states.append(LoopState(traj=tr, session=_session(tr.task_id, tr.sample), policy_text=text))
    await restore_tool_state(states, protocol)
    return states


def _context_full(st: LoopState, engine: Engine) -> bool:
    """The conversation fills the model's context (``engine.max_context``; None: unknown): the
    trajectory stops with stop reason LENGTH instead of asking the engine for what cannot fit."""
    ctx = engine.max_context
    if ctx is None or len(st.traj.prompt_token_ids) + len(st.traj.completion_ids) < ctx:
        return False
    st.traj.metrics["context_full"] = 1.0
    _finish(st, StopReason.LENGTH)
    return True


def _turn_request(st: LoopState, cfg: RolloutConfig, stops: tuple[str, ...]) -> GenerationRequest:
    left = cfg.max_response_tokens - len(st.traj.completion_ids)
    sp = SamplingParams(cfg.temperature, cfg.top_p, cfg.top_k, max(1, min(cfg.max_turn_tokens, left)), stops)
    # a per-trajectory, per-turn seed: the sample does not depend on batching or scheduling
    seed = None if st.seed is None else hash((st.seed, len(st.traj.segments))) & (2**62 - 1)
    return GenerationRequest(st.traj.token_ids, sp, seed=seed)


def _take_turn(st: LoopState, c, protocol: Protocol, tok, cfg: RolloutConfig) -> ToolCall | None:
    """Append a generated turn; finish the state or return the tool call it made."""
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
            return None
        return parsed.call
    st.traj.steps.append(Step(action_segment=action))
    if parsed.final:
        st.traj.answer = parsed.answer
        closed = c.finish_reason is FinishReason.STOP_STRING or protocol.final_turn_ends_with_eos
        if closed and parsed.answer is not None:
            _finish(st, StopReason.ANSWER)
        else:
            _finish(st, StopReason.VOID_TURN if cfg.void_turn_filter and parsed.answer is None else StopReason.EOS)
    else:
        _finish(st, StopReason.LENGTH)
    return None


def _take_observation(st: LoopState, call: ToolCall, obs: Observation, protocol: Protocol, tok, cfg: RolloutConfig) -> None:
    """Append the tool's answer as a TOOL segment (tokenised by us, never re-rendered later)."""
    obs_ids = list(tok(protocol.observation_text(call, obs), add_special_tokens=False)["input_ids"])
    st.traj.segments.append(Segment(Origin.TOOL, obs_ids))
    st.traj.steps.append(Step(action_segment=len(st.traj.segments) - 2, call=call, observation=obs, tool_segment=len(st.traj.segments) - 1))
    if obs.infra_error:
        _finish(st, StopReason.ERROR)
    elif len(st.traj.completion_ids) >= cfg.max_response_tokens:
        _finish(st, StopReason.LENGTH)


async def advance(engine: Engine, protocol: Protocol, states: Sequence[LoopState], cfg: RolloutConfig) -> int:
    """One round for every state that is not done: generate one turn each (one batched engine
    call), parse it, run the tool calls concurrently and append their observations. Returns how
    many states finished in this round."""
    tok = engine.tokenizer
    active = [s for s in states if not s.done]
    if not active:
        return 0
    n_full = sum(_context_full(s, engine) for s in active)
    active = [s for s in active if not s.done]
    if not active:
        return n_full
    stops = protocol.stop_strings()
    comps = engine.generate([_turn_request(st, cfg, stops) for st in active])
    waiting = []
    for st, c in zip(active, comps):
        try:
            if (call := _take_turn(st, c, protocol, tok, cfg)) is not None:
                waiting.append((st, call))
        except Exception as e:  # noqa: BLE001 - one trajectory's failure is its own
            _fail(st, "reading the model's turn", e)
    observations = await asyncio.gather(*(_run_call(call, protocol.tools, protocol, st.session) for st, call in waiting))
    for (st, call), obs in zip(waiting, observations):
        try:
            _take_observation(st, call, obs, protocol, tok, cfg)
        except Exception as e:  # noqa: BLE001
            _fail(st, "appending the tool's observation", e)
    return n_full + sum(1 for s in active if s.done)


async def drive(engine: Engine, protocol: Protocol, st: LoopState, cfg: RolloutConfig, on_finished: Callable[[int], None] | None = None) -> None:
    """Run one state to its end with the engine's asynchronous interface: its tool call runs
    while the other trajectories keep decoding, and its next turn joins the batch at once."""
    tok = engine.tokenizer
    stops = protocol.stop_strings()
    while not st.done and not _context_full(st, engine):
        try:
            c = await engine.agenerate(_turn_request(st, cfg, stops))
            call = _take_turn(st, c, protocol, tok, cfg)
            if call is not None:
                _take_observation(st, call, await _run_call(call, protocol.tools, protocol, st.session), protocol, tok, cfg)
        except Exception as e:  # noqa: BLE001 - one trajectory's failure is its own, never the batch's
            _fail(st, "the agent loop", e)
    if on_finished is not None:
        on_finished(1)


def finalize(st: LoopState, protocol: Protocol, tokenizer) -> Trajectory:
    """Fill what is derived after the loop: the answer (when no turn closed one), the decoded
    text, the trajectory metrics."""
    tr = st.traj
    if tr.answer is None:
        tr.answer = protocol.extract_answer("".join(st.policy_text))
    tr.text = tokenizer.decode(tr.completion_ids, skip_special_tokens=False)
    tr.metrics.update(trajectory_metrics(tr))
    return tr


async def close_sessions(states: Sequence[LoopState], protocol: Protocol) -> None:
    for st in states:
        for t in protocol.tools.values():
            try:
                await t.close_session(st.session)
            except Exception:  # noqa: BLE001 - closing is best effort; the pool reaps workers
                pass


async def run_states(
    engine: Engine,
    protocol: Protocol,
    states: Sequence[LoopState],
    cfg: RolloutConfig,
    on_finished: Callable[[int], None] | None = None,
    seed_index: int = 0,
) -> list[Trajectory]:
    """Advance ``states`` until every one has stopped; returns their finalized trajectories
    (in order). Sessions are closed whatever happens. ``seed_index``: the position of the first
    state in a larger batch split between rollout workers (``tirl.cluster``), so each state gets
    the seed it would get in the whole batch."""
    base = engine.draw_seed()
    if base is not None:  # None: the engine has no generator, requests go unseeded
        for i, st in enumerate(states, start=seed_index):
            if st.seed is None:
                st.seed = hash((base, i)) & (2**62 - 1)
    try:
        if engine.async_native:  # each trajectory on its own; else rounds of one batched generate
            await asyncio.gather(*(drive(engine, protocol, st, cfg, on_finished) for st in states if not st.done))
        else:
            while any(not s.done for s in states):
                n = await advance(engine, protocol, states, cfg)
                if on_finished is not None:
                    on_finished(n)
    finally:
        await close_sessions(states, protocol)
    return [finalize(st, protocol, engine.tokenizer) for st in states]


async def rollout(
    engine: Engine,
    protocol: Protocol,
    tasks: Sequence[Task],
    cfg: RolloutConfig,
    on_finished: Callable[[int], None] | None = None,
    seed_index: int = 0,
) -> list[list[Trajectory]]:
    """Roll out ``cfg.group_size`` trajectories per task; returns one group per task."""
    states = start_states(protocol, engine.tokenizer, tasks, cfg.group_size)
    trajs = await run_states(engine, protocol, states, cfg, on_finished, seed_index)
    G = cfg.group_size
    return [trajs[i * G : (i + 1) * G] for i in range(len(tasks))]


async def continue_from(
    engine: Engine,
    protocol: Protocol,
    prefixes: Sequence[Trajectory],
    cfg: RolloutConfig,
    on_finished: Callable[[int], None] | None = None,
) -> list[Trajectory]:
    """Continue each partial trajectory (a ``prefix_trajectory``: prompt + segments up to a
    step boundary after a tool observation) to its end. Each continuation keeps the prefix's
    ids exactly and extends them; the token budget and the tool-call cap count the prefix."""
    states = await continue_states(protocol, engine.tokenizer, prefixes)
    return await run_states(engine, protocol, states, cfg, on_finished)


def trajectory_metrics(tr: Trajectory) -> dict[str, float]:
    calls = [s for s in tr.steps if s.call is not None]
    return {
        "tool_calls": float(len(calls)),
        "tool_errors": float(sum(1 for s in calls if s.observation is not None and not s.observation.ok)),
        "malformed_calls": float(sum(1 for s in calls if s.call.error is not None)),
        "policy_tokens": float(tr.n_policy_tokens),
        "tool_tokens": float(sum(len(s) for s in tr.segments if s.origin is Origin.TOOL)),
    }
