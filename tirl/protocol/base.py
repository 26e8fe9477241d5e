"""A protocol is how tools are shown to the model and how its text is read back.

It renders the prompt (system prompt built from the tools' schemas + the task), names the stop
strings that end a tool-calling turn, parses one generated turn into a tool call / final answer
(never raising on model text: a malformed call becomes a ToolCall with ``error`` set, which the
model then reads as its observation), renders observations as text to append, renders scripted
(expert / reference) steps, and checks the format of a finished completion.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from tirl.errors import UserError
from tirl.protocol.answer import last_boxed
from tirl.tools.base import Tool
from tirl.types import Observation, Script, ScriptStep, Task, ToolCall


def strip_trailing_special(text: str) -> str:
    """``text`` without the special tokens (``<|im_end|>``, ``<|endoftext|>``: ``<|`` + 1-40
    characters other than ``|<>`` + ``|>``) and whitespace at its end. Linear in the text (a
    regex anchored at the end backtracks quadratically on a long run of such tokens)."""
    t = text.rstrip()
    while t.endswith("|>"):
        start = t.rfind("<|", max(0, len(t) - 44))
        inner = t[start + 2 : -2] if start >= 0 else ""
        if start < 0 or not 1 <= len(inner) <= 40 or any(c in "|<>" for c in inner):
            break
        t = t[:start].rstrip()
    return t


@dataclass
class ParsedTurn:
    """What one generated turn did. ``call`` is set when the turn ended in a tool call (possibly
    malformed); ``final`` when the turn closed the answer; ``answer`` is the extracted answer."""

    call: ToolCall | None = None
    final: bool = False
    answer: str | None = None


class Protocol(abc.ABC):
    name: str = "base"
    final_turn_ends_with_eos: bool = False
    """Whether a finished answer turn ends with the EOS token (chat-turn formats) rather than a
    closing tag the engine stops at."""

    def __init__(self, tools: Sequence[Tool], system_prompt: str | None = None):
        self.tools = {t.name: t for t in tools}
        self._system_prompt = system_prompt

    # -- prompt ----------------------------------------------------------------------------
    @abc.abstractmethod
    def system_prompt(self) -> str:
        """The system prompt that describes the tools and the answer format."""

    def messages(self, task: Task) -> list[dict[str, str]]:
        """Chat messages for a task: our system prompt, then the task's own messages or text.
        A task that brings its own system message keeps it, after ours."""
        msgs = [{"role": "system", "content": self.system_prompt()}]
        if isinstance(task.prompt, str):
            msgs.append({"role": "user", "content": task.prompt})
        else:
            msgs.extend(task.prompt)
        return msgs

    def prompt_ids(self, tokenizer, task: Task) -> list[int]:
        """Token ids of the rendered chat prompt, ending with the assistant header."""
        text = tokenizer.apply_chat_template(self.messages(task), tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- generation ------------------------------------------------------------------------
    @abc.abstractmethod
    def stop_strings(self) -> tuple[str, ...]:
        """Strings that end a turn (a closed tool call, a closed answer)."""

    @abc.abstractmethod
    def parse_turn(self, turn_text: str, ended_by_eos: bool) -> ParsedTurn:
        """Read one generated turn. Never raises."""

    @abc.abstractmethod
    def observation_text(self, call: ToolCall, obs: Observation) -> str:
        """The text appended after a tool call (tokenised by tirl, never trained)."""

    def error_observation(self, call: ToolCall) -> Observation:
        """A malformed call is answered with an observation naming what is wrong."""
        return Observation(ok=False, output=f"Error: {call.error}", error=call.error)

    def extract_answer(self, policy_text: str) -> str | None:
        """Final answer = content of the last ``\\boxed{}`` the model wrote (ALGORITHMS.md §1)."""
        return last_boxed(policy_text)

    # -- scripted trajectories -------------------------------------------------------------
    @abc.abstractmethod
    def render_step(self, step: ScriptStep) -> str:
        """Assistant text of one scripted step (ends with the tool call, when it has code)."""

    @abc.abstractmethod
    def render_final(self, script: Script) -> str:
        """Assistant text that closes a scripted solution with its answer."""

    def script_call(self, step: ScriptStep) -> ToolCall | None:
        """The call a scripted step makes (parsed back from its own rendering, so a script
        exercises exactly the parser the model's text goes through)."""
        if step.code is None:
            return None
        if step.tool not in self.tools:
            raise UserError(f"a scripted step calls the {step.tool!r} tool, which this run does not offer (tools: {', '.join(self.tools) or 'none'})")
        return self.parse_turn(self.render_step(step), ended_by_eos=False).call

    # -- reward support --------------------------------------------------------------------
    @abc.abstractmethod
    def format_error(self, completion_text: str) -> str | None:
        """None when a finished completion follows the protocol, else what is wrong."""
