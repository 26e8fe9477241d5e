"""What judges are asked, and how their replies are read. A reply that does not follow the
requested format is an observation (None / an empty edit), never an exception."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tirl.judge.llm import ChatModel, last_tag, render_prompt
from tirl.types import Task, Trajectory


def task_question(task: Task) -> str:
    """The task's question as text (the user turns of a chat prompt, joined)."""
    if isinstance(task.prompt, str):
        return task.prompt
    return "\n\n".join(m["content"] for m in task.prompt if m.get("role") == "user") or "\n\n".join(m["content"] for m in task.prompt)


def parse_yes_no(reply: str) -> bool | None:
    """``<answer>yes</answer>`` → True, ``<answer>no</answer>`` → False, else None."""
    a = last_tag(reply, "answer")
    if a is None:
        return None
    a = a.strip().strip(".").lower()
    return True if a == "yes" else False if a == "no" else None


def judge_conciseness(model: ChatModel, tasks: Sequence[Task], trajs: Sequence[Trajectory]) -> list[bool | None]:
    """ET-Agent Conciseness judge (arXiv 2601.06860 App. E.1): per trajectory, True when it has
    no redundant or ineffective tool call, False when it has one, None when the reply is unreadable.
    A trajectory without tool calls is concise by definition and is not sent to the judge."""
    verdicts: list[bool | None] = [True] * len(trajs)
    ask = [i for i, t in enumerate(trajs) if t.n_tool_calls > 0]
    prompts = [render_prompt("conciseness", question=task_question(tasks[i]), trajectory=trajs[i].text) for i in ask]
    for i, reply in zip(ask, model.ask(prompts)):
        redundant = parse_yes_no(reply)
        verdicts[i] = None if redundant is None else not redundant
    return verdicts


@dataclass
class StepEdit:
    """A judge's edit of a numbered step: ``step`` (1-based; None = nothing to change),
    the corrected step text, and the analysis when one was asked for."""

    step: int | None
    corrected: str = ""
    analysis: str = ""


_STEP = re.compile(r"Step:\s*(\d+|no)\b", re.IGNORECASE)
_CORRECTED = re.compile(r"Corrected Step:\s*(.*)", re.IGNORECASE | re.DOTALL)
_ANALYSIS = re.compile(r"Analysis:\s*(.*?)(?:\n\s*Corrected Step:|\Z)", re.IGNORECASE | re.DOTALL)


def parse_step_edit(reply: str, n_steps: int) -> StepEdit:
    """Read ``Step: k / Analysis / Corrected Step`` (ET-Agent flywheel prompts). A step number
    outside 1..n_steps, or a missing corrected step, reads as "no edit"."""
    m = _STEP.search(reply)
    if m is None or m.group(1).lower() == "no":
        return StepEdit(None)
    k = int(m.group(1))
    c = _CORRECTED.search(reply)
    corrected = c.group(1).strip() if c else ""
    if not 1 <= k <= n_steps or not corrected:
        return StepEdit(None)
    a = _ANALYSIS.search(reply)
    return StepEdit(k, corrected, a.group(1).strip() if a else "")
