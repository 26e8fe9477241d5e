"""TagProtocol: Tool-Star style tags (ALGORITHMS.md §1; Tool-Star / ARPO / ET-Agent prompts).

The model thinks in ``<think>…</think>``, calls a tool by writing its argument between the
tool's tags (``<python>code</python>``; generation stops at the closing tag), the environment
appends ``<result>\\n{output}\\n</result>`` (never trained), and the model ends with
``<answer>… \\boxed{X} …</answer>``.

A tool whose ``main_arg`` is ``""`` (an MCP or custom tool without one string argument) takes a
JSON object of all its arguments between its tags (``<add>{"a": 1, "b": 2}</add>``; empty tags
mean ``{}``); the system prompt shows the object's keys and types.
"""

from __future__ import annotations

import json
import re

from tirl.protocol.base import ParsedTurn, Protocol, strip_trailing_special
from tirl.types import Observation, Script, ScriptStep, ToolCall

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_+-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)
# what may follow a closing tag in the same sampled token (e.g. "</python>\n")
_MAX_TRAILING = 4


def strip_code_fence(code: str) -> str:
    """Small models often wrap code in a markdown fence inside the tags; run what is inside."""
    m = _FENCE.match(code)
    return m.group(1) if m else code


def _ends_with_tag(text: str, tag: str) -> int:
    """Position of ``tag`` if the text ends with it (allowing a few trailing non-tag chars)."""
    pos = text.rfind(tag)
    if pos < 0:
        return -1
    trailing = text[pos + len(tag) :]
    if "<" in trailing or len(trailing.strip()) > _MAX_TRAILING:
        return -1
    return pos


def _json_shape(parameters: dict) -> str:
    """``{"a": integer, "b": integer, "unit"?: string}``: the keys and types a JSON-body tool takes
    (``?`` marks an optional key)."""
    props = parameters.get("properties") or {}
    required = set(parameters.get("required") or [])
    items = []
    for k, p in props.items():
        kind = p.get("type", "any") if isinstance(p, dict) else "any"
        kind = "|".join(map(str, kind)) if isinstance(kind, list) else str(kind)
        items.append(f"{json.dumps(k)}{'' if k in required else '?'}: {kind}")
    return "{" + ", ".join(items) + "}"


def _json_arguments(name: str, parameters: dict, body: str) -> tuple[dict, str | None]:
    """The arguments object written between a JSON-body tool's tags, or the error the model reads."""
    shape = _json_shape(parameters)
    if not body.strip():
        args: object = {}
    else:
        try:
            args = json.loads(body)
        except (ValueError, RecursionError):
            return {}, f"the input of <{name}> must be a JSON object of its arguments: {shape}"
    if not isinstance(args, dict):
        return {}, f"the input of <{name}> must be a JSON object of its arguments: {shape}"
    missing = [k for k in parameters.get("required") or [] if k not in args]
    if missing:
        return {}, f"missing argument(s) for {name}: {', '.join(missing)} (expected {shape})"
    return args, None


class TagProtocol(Protocol):
    name = "tag"

    def system_prompt(self) -> str:
        if self._system_prompt is not None:
            return self._system_prompt
        if not self.tools:  # no tools: say nothing about them
            lines = ["You are a helpful assistant that solves problems step by step.", "Think inside <think> </think>."]
        else:
            lines = [
                "You are a helpful assistant that solves problems step by step and can run tools.",
                "Think inside <think> </think>. To use a tool, write its input between the tool's tags; "
                "the result comes back inside <result> </result>. Available tools:",
            ]
        for t in self.tools.values():
            # the tag carries the tool's one main argument, so its JSON schema would only add noise
            lines.append(f"- <{t.name}>{t.main_arg or _json_shape(t.parameters)}</{t.name}>: {t.description}")
        lines.append("When you are done, give the final answer inside <answer> </answer> with the result in \\boxed{}.")
        if "python" in self.tools:
            lines += [
                "Example:",
                "<think>I compute it with Python.</think>",
                "<python>print(1234 * 5)</python>",
                "<result>\n6170\n</result>",
                "<answer>The answer is \\boxed{6170}.</answer>",
            ]
        if "search" in self.tools:
            lines += [
                "Example:",
                "<think>I look it up.</think>",
                "<search>Eiffel Tower height</search>",
                "<result>\nDoc 1 (Title: Eiffel Tower) The Eiffel Tower is 330 metres tall.\n</result>",
                "<answer>The answer is \\boxed{330}.</answer>",
            ]
        return "\n".join(lines)

    def stop_strings(self) -> tuple[str, ...]:
        return tuple(f"</{name}>" for name in self.tools) + ("</answer>",)

    def parse_turn(self, turn_text: str, ended_by_eos: bool) -> ParsedTurn:
        # a closed answer ends the trajectory
        if (pos := _ends_with_tag(turn_text, "</answer>")) >= 0:
            start = turn_text.rfind("<answer>", 0, pos)
            inside = turn_text[start + len("<answer>") : pos] if start >= 0 else turn_text[:pos]
            return ParsedTurn(final=True, answer=self.extract_answer(inside))
        for name, tool in self.tools.items():
            close = f"</{name}>"
            if (pos := _ends_with_tag(turn_text, close)) < 0:
                continue
            start = turn_text.rfind(f"<{name}>", 0, pos)
            raw = turn_text[start:] if start >= 0 else turn_text
            if start < 0:
                return ParsedTurn(call=ToolCall(name=name, arguments={}, raw=raw, error=f"found {close} without an opening <{name}> tag"))
            arg = strip_code_fence(turn_text[start + len(name) + 2 : pos]).strip("\n")
            if tool.main_arg == "":
                args, error = _json_arguments(name, tool.parameters, arg)
                return ParsedTurn(call=ToolCall(name=name, arguments=args, raw=raw, error=error))
            if not arg.strip():
                return ParsedTurn(
                    call=ToolCall(name=name, arguments={}, raw=raw, error=f"empty <{name}> call: put the {tool.main_arg} between the tags")
                )
            return ParsedTurn(call=ToolCall(name=name, arguments={tool.main_arg: arg}, raw=raw))
        if ended_by_eos:
            return ParsedTurn(final=True, answer=self.extract_answer(turn_text))
        return ParsedTurn()

    def observation_text(self, call: ToolCall, obs: Observation) -> str:
        return f"\n<result>\n{obs.text()}\n</result>\n"

    def render_step(self, step: ScriptStep) -> str:
        text = f"<think>{step.thought}</think>\n"
        if step.code is not None:
            # code on lines of its own (as models write it); a query inline: <search>query</search>
            body = f"\n{step.code}\n" if step.tool == "python" else step.code
            text += f"<{step.tool}>{body}</{step.tool}>"
        return text

    def render_final(self, script: Script) -> str:
        return f"<think>{script.final_thought}</think>\n<answer>The answer is \\boxed{{{script.answer}}}.</answer>"

    def format_error(self, completion_text: str) -> str | None:
        text = strip_trailing_special(completion_text)
        n_open, n_close = text.count("<answer>"), text.count("</answer>")
        if n_open != 1 or n_close != 1:
            return f"expected exactly one <answer>…</answer>, found {n_open} opening and {n_close} closing tags"
        if not text.endswith("</answer>"):
            return "text after </answer>"
        answer = text[text.index("<answer>") :]
        if self.extract_answer(answer) is None:
            return "no \\boxed{} inside <answer>"
        if text.count("<think>") != text.count("</think>"):
            return "unbalanced <think> tags"
        n_calls = 0
        for name in self.tools:
            o, c = text.count(f"<{name}>"), text.count(f"</{name}>")
            if o != c:
                return f"unbalanced <{name}> tags ({o} opening, {c} closing)"
            n_calls += c
        n_results = text.count("<result>")
        if n_results != n_calls or text.count("</result>") != n_calls:
            return f"{n_calls} tool calls but {n_results} <result> blocks (results are written by the environment)"
        return None
