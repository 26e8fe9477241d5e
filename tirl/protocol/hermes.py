"""HermesProtocol: JSON tool calls in ``<tool_call>`` tags, results as ``tool`` turns rendered by
the model's own chat template (the format of Qwen chat templates, used by DemyAgent / ELPO).

The model writes ``<tool_call>{"name": "python", "arguments": {"code": "..."}}</tool_call>``;
generation stops at the closing tag. The observation text is what the chat template puts
between the end of that assistant turn and the start of the next one, derived once from the
template itself, so tool turns look exactly as the template would render them.
"""

from __future__ import annotations

import json

from tirl.protocol.base import ParsedTurn, Protocol, strip_trailing_special
from tirl.protocol.tag import _ends_with_tag
from tirl.types import Observation, Script, ScriptStep, ToolCall

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_MARK_A, _MARK_T = "\x00ASSISTANT\x00", "\x00TOOL\x00"


class HermesProtocol(Protocol):
    name = "hermes"
    final_turn_ends_with_eos = True

    def __init__(self, tools, tokenizer, system_prompt: str | None = None):
        super().__init__(tools, system_prompt)
        self._tool_prefix, self._tool_suffix = self._tool_turn_wrapper(tokenizer)

    @staticmethod
    def _tool_turn_wrapper(tokenizer) -> tuple[str, str]:
        """Render [user, assistant(A), tool(T)] + generation prompt and cut around the markers:
        the text between A and T opens the tool turn, the text after T closes it and opens the
        next assistant turn."""
        msgs = [{"role": "user", "content": "u"}, {"role": "assistant", "content": _MARK_A}, {"role": "tool", "content": _MARK_T}]
        try:
            text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        except Exception as e:  # noqa: BLE001 - a template without a tool role is a config error
            raise ValueError(f"the chat template cannot render a 'tool' turn, so HermesProtocol cannot be used: {e}") from e
        a, t = text.find(_MARK_A), text.find(_MARK_T)
        if a < 0 or t < 0 or t < a:
            raise ValueError("the chat template dropped the assistant or tool message; HermesProtocol cannot be used")
        return text[a + len(_MARK_A) : t], text[t + len(_MARK_T) :]

    def system_prompt(self) -> str:
        if self._system_prompt is not None:
            return self._system_prompt
        schemas = "\n".join(
            json.dumps({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}})
            for t in self.tools.values()
        )
        return (
            "You are a helpful assistant that solves problems step by step.\n\n# Tools\n\n"
            "You may call one or more functions to assist with the user query.\n"
            f"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{schemas}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n\n'
            "Put the final answer in \\boxed{}."
        )

    def stop_strings(self) -> tuple[str, ...]:
        return (_CLOSE,)

    def _parse_call(self, raw: str, body: str) -> ToolCall:
        def bad(msg: str, name: str = "") -> ToolCall:
            return ToolCall(name=name, arguments={}, raw=raw, error=msg)

        try:
            obj = json.loads(body)
        except RecursionError:
            return bad("the tool call is not valid JSON (nested too deeply)")
        except ValueError as e:  # JSONDecodeError, or an integer of more digits than Python converts
            return bad(f"the tool call is not valid JSON ({getattr(e, 'msg', None) or str(e)[:120]})")
        if not isinstance(obj, dict):
            return bad('the tool call must be a JSON object {"name": ..., "arguments": {...}}')
        name = obj.get("name")
        if not isinstance(name, str) or name not in self.tools:
            return bad(f"unknown tool {name!r}; available: {', '.join(self.tools)}", name if isinstance(name, str) else "")
        args = obj.get("arguments", {})
        if isinstance(args, str):  # some models JSON-encode the arguments twice
            try:
                args = json.loads(args)
            except (ValueError, RecursionError):
                return bad("'arguments' must be a JSON object", name)
        if not isinstance(args, dict):
            return bad("'arguments' must be a JSON object", name)
        required = self.tools[name].parameters.get("required", [])
        missing = [k for k in required if k not in args]
        if missing:
            return bad(f"missing argument(s) for {name}: {', '.join(missing)}", name)
        return ToolCall(name=name, arguments=args, raw=raw)

    def parse_turn(self, turn_text: str, ended_by_eos: bool) -> ParsedTurn:
        if (pos := _ends_with_tag(turn_text, _CLOSE)) >= 0:
            start = turn_text.rfind(_OPEN, 0, pos)
            if start < 0:
                return ParsedTurn(call=ToolCall(name="", arguments={}, raw=turn_text, error=f"found {_CLOSE} without an opening {_OPEN}"))
            return ParsedTurn(call=self._parse_call(turn_text[start:], turn_text[start + len(_OPEN) : pos].strip()))
        if ended_by_eos:
            return ParsedTurn(final=True, answer=self.extract_answer(turn_text))
        return ParsedTurn()

    def observation_text(self, call: ToolCall, obs: Observation) -> str:
        return self._tool_prefix + obs.text() + self._tool_suffix

    def render_step(self, step: ScriptStep) -> str:
        text = step.thought
        if step.code is not None:
            tool = self.tools.get(step.tool)
            arg = tool.main_arg if tool is not None else "code"
            text += f"\n{_OPEN}\n" + json.dumps({"name": step.tool, "arguments": {arg: step.code}}) + f"\n{_CLOSE}"
        return text

    def render_final(self, script: Script) -> str:
        return f"{script.final_thought} The answer is \\boxed{{{script.answer}}}."

    def format_error(self, completion_text: str) -> str | None:
        text = strip_trailing_special(completion_text)
        if text.count(_OPEN) != text.count(_CLOSE):
            return "unbalanced <tool_call> tags"
        last_turn = text.rsplit(self._tool_suffix, 1)[-1] if self._tool_suffix else text
        if _OPEN in last_turn:
            return "the last turn is a tool call, not an answer"
        if self.extract_answer(last_turn) is None:
            return "no \\boxed{} answer in the last turn"
        return None
