"""ET-Agent's self-evolving data flywheel (Chen, Dong, Dou 2026, arXiv 2601.06860 §4.1, Alg. 1;
ALGORITHMS.md §6; released ``flywheel/``).

Round 0 rolls every task out (``initial_samples`` times) into a buffer. Each later round picks,
per task, the best trajectory not yet evolved (correct first, then fewest tool calls, then
fewest tokens) and evolves it:

- correct → *redundant-step removal*: a judge numbers the steps and names the first redundant
  one with a corrected step; the trajectory is cut before it, the corrected step's tool call is
  executed, and the policy continues. When the judge finds nothing (or its reply is
  unreadable) the task gets a *fresh re-rollout* instead (the released code's third path);
- wrong → *first-flaw correction* (a judge names the first flawed step and a replacement,
  executed and continued as above) and *hint injection* (the flawed step is kept and the hint
  "Wait, perhaps I should use Python tools and rethink this problem." is appended; with no
  readable step the hint goes at the end of the trajectory with its answer turn removed).
  The released code's step-level hint inserts a single random character (``random.choice`` on
  the chosen hint string); tirl inserts the whole hint.

A "step" is one action and the tool result that answered it (the paper splits on
``</result>``). Continuations run through the agent loop, so their tool calls execute for real.
After a corrected step the loop replays the kept prefix's calls first, so later cells see the
variables earlier ones defined; after a hint (text, not a loop step boundary) the continuation
starts a fresh interpreter session (the kept cells' results stay in the context). Correctness is the task's verifier
(math-verify / F1), not the paper's LLM judge. Left out: think-only global refinement.

The buffer lives on disk (``buffer.jsonl``, one line per trajectory or "evolved" mark, and
``state.json`` with the last completed round). A round's lines are appended before the round
is marked complete; on resume, lines of an incomplete round are dropped and the round is redone.
``rft_set`` filters the buffer for Phase 1 (RFT): correct, well formed, no failed tool call.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tirl.judge.llm import ChatModel, render_prompt
from tirl.judge.roles import StepEdit, parse_step_edit, task_question
from tirl.protocol.base import Protocol
from tirl.rewards.verify import score_answer
from tirl.rollout.agent_loop import RolloutConfig, _run_call, continue_from, rollout, trajectory_metrics
from tirl.rollout.io import trajectory_from_json, trajectory_to_json
from tirl.types import Origin, Segment, Step, StopReason, Task, Trajectory

# -- buffer ----------------------------------------------------------------------------------


@dataclass
class Entry:
    uid: str
    task_id: str
    round: int
    op: str  # init | redundant | rerollout | flaw | hint
    parent: str | None
    correct: bool
    traj: Trajectory
    evolved: bool = False


class Buffer:
    """The flywheel's trajectories on disk; ``load`` drops the lines of an incomplete round."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / "buffer.jsonl"
        self.state_path = self.root / "state.json"
        self.entries: dict[str, Entry] = {}
        self.completed = -1  # last completed round (-1: nothing yet)

    def load(self) -> Buffer:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.state_path.exists():
            self.completed = int(json.loads(self.state_path.read_text())["completed_rounds"])
        kept = []
        if self.path.exists():
            for i, line in enumerate(self.path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    if i == len(self.path.read_text().splitlines()):
                        break  # a line cut by an interruption: its round is redone anyway
                    raise ValueError(f"{self.path}:{i}: corrupt flywheel buffer line") from None
                if d["round"] > self.completed:
                    continue
                kept.append(line)
                if "evolved" in d:
                    self.entries[d["evolved"]].evolved = True
                else:
                    self.entries[d["uid"]] = Entry(
                        d["uid"], d["task_id"], d["round"], d["op"], d.get("parent"), d["correct"], trajectory_from_json(d["traj"])
                    )
        self.path.write_text("".join(line + "\n" for line in kept))  # drop an incomplete round's lines
        return self

    def add(self, e: Entry) -> None:
        self.entries[e.uid] = e
        with open(self.path, "a") as f:
            f.write(
                json.dumps(
                    {
                        "uid": e.uid,
                        "task_id": e.task_id,
                        "round": e.round,
                        "op": e.op,
                        "parent": e.parent,
                        "correct": e.correct,
                        "traj": trajectory_to_json(e.traj),
                    }
                )
                + "\n"
            )

    def mark_evolved(self, uid: str, round_: int) -> None:
        self.entries[uid].evolved = True
        with open(self.path, "a") as f:
            f.write(json.dumps({"evolved": uid, "round": round_}) + "\n")

    def complete(self, round_: int) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"completed_rounds": round_}))
        tmp.replace(self.state_path)
        self.completed = round_

    def of_task(self, task_id: str) -> list[Entry]:
        return [e for e in self.entries.values() if e.task_id == task_id]


def best_unevolved(entries: Sequence[Entry]) -> Entry | None:
    """Correct first, then fewest tool calls, then fewest tokens, then oldest (Alg. 1)."""
    pool = [e for e in entries if not e.evolved and e.traj.stop_reason is not StopReason.ERROR]
    if not pool:
        return None
    return min(pool, key=lambda e: (not e.correct, e.traj.n_tool_calls, len(e.traj.completion_ids), e.round, e.uid))


# -- editing trajectories ----------------------------------------------------------------------


def step_texts(traj: Trajectory, tokenizer) -> list[str]:
    """Each step as text: its action and the tool result that answered it."""
    out = []
    for st in traj.steps:
        ids = list(traj.segments[st.action_segment].token_ids)
        if st.tool_segment is not None:
            ids += traj.segments[st.tool_segment].token_ids
        out.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
    return out


def numbered(steps: Sequence[str]) -> str:
    return "\n\n".join(f"Step {i}:\n{s}" for i, s in enumerate(steps, 1))


def _prefix_segments(traj: Trajectory, n_steps: int) -> tuple[list[Segment], list[Step]]:
    """Segments and steps of the first ``n_steps`` steps (their actions and tool results)."""
    if n_steps <= 0:
        return [], []
    last = traj.steps[n_steps - 1]
    end = (last.tool_segment if last.tool_segment is not None else last.action_segment) + 1
    return [Segment(s.origin, list(s.token_ids), s.logprobs, s.entropy) for s in traj.segments[:end]], list(traj.steps[:n_steps])


@dataclass
class Draft:
    """A trajectory prefix to continue: kept segments/steps, for a task, made by ``op``."""

    task: Task
    parent: Entry
    op: str
    segments: list[Segment]
    steps: list[Step]
    answer: str | None = None  # set when an edit itself closed the answer: nothing to continue


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


async def _append_text(draft: Draft, text: str, protocol: Protocol, tokenizer, session: str, execute: bool) -> None:
    """Append an EXPERT segment (an edit or a hint); run its tool call when ``execute``."""
    draft.segments.append(Segment(Origin.EXPERT, _ids(tokenizer, text)))
    parsed = protocol.parse_turn(text, ended_by_eos=False)
    call = parsed.call if execute else None
    if call is None:
        draft.steps.append(Step(len(draft.segments) - 1))
        if execute and parsed.final and parsed.answer is not None:
            draft.answer = parsed.answer
        return
    obs = await _run_call(call, protocol.tools, protocol, session)
    draft.segments.append(Segment(Origin.TOOL, _ids(tokenizer, protocol.observation_text(call, obs))))
    draft.steps.append(Step(len(draft.segments) - 2, call, obs, len(draft.segments) - 1))


class _PrefixProtocol:
    """The task's protocol, except that a draft's prompt is its original prompt plus the kept
    prefix: the agent loop then continues from the prefix without knowing it exists."""

    def __init__(self, inner: Protocol, prefixes: dict[str, list[int]]):
        self._inner = inner
        self._prefixes = prefixes

    def prompt_ids(self, tokenizer, task: Task) -> list[int]:
        return list(self._prefixes[task.id])

    def __getattr__(self, name):
        return getattr(self._inner, name)


async def continue_drafts(drafts: Sequence[Draft], engine, protocol: Protocol, tokenizer, cfg: RolloutConfig, extra_calls: int) -> list[Trajectory]:
    """Let the policy continue each draft through the agent loop (real tool execution); the
    result is one trajectory on the task's own prompt: kept prefix + edit + continuation.

    A draft that ends at a tool observation (a corrected step that made a call) goes through
    the agent loop's ``continue_from``, which replays the prefix's calls so the continuation's
    session holds the variables they defined. A draft that ends in text (a hint) cannot be a
    loop prefix; it continues as a prompt that already holds the prefix, in a fresh session."""
    out: list[Trajectory | None] = [None] * len(drafts)
    cap = cfg.max_tool_calls + extra_calls
    observed, textual = [], []
    for i, d in enumerate(drafts):
        prompt = protocol.prompt_ids(tokenizer, d.task)
        if d.answer is not None:  # the edit answered: the draft is the whole trajectory
            tr = Trajectory(d.task.id, 0, prompt, d.segments, d.steps, answer=d.answer, gold=d.task.answer, stop_reason=StopReason.ANSWER)
            tr.text = tokenizer.decode(tr.completion_ids, skip_special_tokens=False)
            tr.metrics.update(trajectory_metrics(tr))
            out[i] = tr
        elif d.steps and d.steps[-1].tool_segment is not None:
            observed.append((i, Trajectory(d.task.id, i, prompt, d.segments, d.steps, gold=d.task.answer)))
        else:
            textual.append((i, d, prompt))
    if observed:
        done = await continue_from(engine, protocol, [t for _, t in observed], cfg.model_copy(update={"max_tool_calls": cap}))
        for (i, _), tr in zip(observed, done):
            tr.sample = 0
            out[i] = tr
    for i, d, prompt in textual:  # one at a time: each has its own tool-call and token budget
        prefix = prompt + [t for s in d.segments for t in s.token_ids]
        used_calls = sum(1 for s in d.steps if s.call is not None)
        key = f"{d.task.id}#draft"
        rcfg = cfg.model_copy(
            update={
                "group_size": 1,
                "max_tool_calls": max(0, cap - used_calls),
                "max_response_tokens": max(1, cfg.max_response_tokens - (len(prefix) - len(prompt))),
            }
        )
        (cont,) = (await rollout(engine, _PrefixProtocol(protocol, {key: prefix}), [Task(key, d.task.prompt, d.task.answer, d.task.meta)], rcfg))[0]
        base = len(d.segments)
        steps = list(d.steps) + [
            Step(s.action_segment + base, s.call, s.observation, None if s.tool_segment is None else s.tool_segment + base) for s in cont.steps
        ]
        tr = Trajectory(d.task.id, 0, prompt, d.segments + cont.segments, steps, answer=cont.answer, gold=d.task.answer, stop_reason=cont.stop_reason)
        tr.text = tokenizer.decode(tr.completion_ids, skip_special_tokens=False)
        if tr.answer is None:
            tr.answer = protocol.extract_answer(tr.text)
        tr.metrics.update(trajectory_metrics(tr))
        out[i] = tr
    return [t for t in out if t is not None]


# -- the flywheel ------------------------------------------------------------------------------


def is_correct(task: Task, traj: Trajectory) -> bool:
    return traj.stop_reason is not StopReason.ERROR and score_answer(task, traj.answer) >= 1.0


def _uid(task_id: str) -> str:
    return f"{task_id}:{uuid.uuid4().hex[:8]}"


async def evolve_round(
    round_: int, tasks: Sequence[Task], buf: Buffer, engine, judge: ChatModel, protocol: Protocol, tokenizer, rcfg: RolloutConfig, fcfg
) -> dict[str, int]:
    """One flywheel round over all tasks (Alg. 1 lines 3-12)."""
    counts = {"redundant": 0, "rerollout": 0, "flaw": 0, "hint": 0, "no_candidate": 0}
    picks = [(t, best_unevolved(buf.of_task(t.id))) for t in tasks]
    for _t, e in picks:
        if e is None:
            counts["no_candidate"] += 1
    picks = [(t, e) for t, e in picks if e is not None]
    steps = {e.uid: step_texts(e.traj, tokenizer) for _, e in picks}
    prompts = [
        render_prompt("step_redundant" if e.correct else "step_flaw", question=task_question(t), steps=numbered(steps[e.uid])) for t, e in picks
    ]
    replies = judge.ask(prompts)
    drafts: list[Draft] = []
    rerollouts: list[tuple[Task, Entry]] = []
    session = f"flywheel/{uuid.uuid4().hex[:8]}"
    try:
        for (task, e), reply in zip(picks, replies):
            edit: StepEdit = parse_step_edit(reply, len(steps[e.uid]))
            if e.correct and edit.step is None:
                rerollouts.append((task, e))
                continue
            if edit.step is not None:  # replace step k: keep steps 1..k-1, run the corrected step
                segs, sts = _prefix_segments(e.traj, edit.step - 1)
                d = Draft(task, e, "redundant" if e.correct else "flaw", segs, sts)
                await _append_text(d, edit.corrected, protocol, tokenizer, session, execute=True)
                drafts.append(d)
            if not e.correct:  # hint after the flawed step, or at the end without the answer turn
                keep = edit.step if edit.step is not None else max((i + 1 for i, s in enumerate(e.traj.steps) if s.call is not None), default=0)
                segs, sts = _prefix_segments(e.traj, keep)
                d = Draft(task, e, "hint", segs, sts)
                await _append_text(
                    d,
                    f"\n<think>{fcfg.hint}</think>\n" if protocol.name == "tag" else f"\n{fcfg.hint}\n",
                    protocol,
                    tokenizer,
                    session,
                    execute=False,
                )
                drafts.append(d)
    finally:
        for tool in protocol.tools.values():
            await tool.close_session(session)
    new: list[tuple[Task, Entry, str, Trajectory]] = []
    for d, tr in zip(drafts, await continue_drafts(drafts, engine, protocol, tokenizer, rcfg, fcfg.extra_tool_calls)):
        new.append((d.task, d.parent, d.op, tr))
    if rerollouts:
        groups = await rollout(engine, protocol, [t for t, _ in rerollouts], rcfg.model_copy(update={"group_size": 1}))
        new += [(t, e, "rerollout", g[0]) for (t, e), g in zip(rerollouts, groups)]
    for task, parent, op, tr in new:
        counts[op] += 1
        buf.add(Entry(_uid(task.id), task.id, round_, op, parent.uid, is_correct(task, tr), tr))
    for _, e in picks:
        buf.mark_evolved(e.uid, round_)
    return counts


async def run_flywheel(
    tasks: Sequence[Task], out: str | Path, engine, judge: ChatModel, protocol: Protocol, tokenizer, rcfg: RolloutConfig, fcfg, say=lambda msg: None
) -> Buffer:
    """Round 0 (initial rollouts) and ``fcfg.rounds`` evolution rounds, resuming from ``out``."""
    buf = Buffer(out).load()
    if buf.completed >= 0:
        say(f"resuming: {buf.completed} round(s) done, {len(buf.entries)} trajectories in the buffer")
    if buf.completed < 0:
        groups = await rollout(engine, protocol, tasks, rcfg.model_copy(update={"group_size": fcfg.initial_samples}))
        for task, g in zip(tasks, groups):
            for tr in g:
                buf.add(Entry(_uid(task.id), task.id, 0, "init", None, is_correct(task, tr), tr))
        buf.complete(0)
        say(f"round 0: {sum(len(g) for g in groups)} initial rollouts")
    for r in range(buf.completed + 1, fcfg.rounds + 1):
        counts = await evolve_round(r, tasks, buf, engine, judge, protocol, tokenizer, rcfg, fcfg)
        buf.complete(r)
        say(f"round {r}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return buf


def rft_set(buf: Buffer, protocol: Protocol) -> list[Trajectory]:
    """Phase 1 (RFT) data: correct, well-formed trajectories whose tool calls all succeeded
    (ET-Agent §4.2.1 quality filter), marked correct for ``tirl sft sft.source=FILE``."""
    out = []
    for e in buf.entries.values():
        t = e.traj
        if not e.correct or protocol.format_error(t.text) is not None:
            continue
        if any(s.call is not None and (s.observation is None or not s.observation.ok) for s in t.steps):
            continue
        t.rewards = {**t.rewards, "correct": 1.0}
        out.append(t)
    return out
