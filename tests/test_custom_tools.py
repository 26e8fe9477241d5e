"""``tools.custom``: a class named in the config is imported, constructed with its keyword
arguments, checked against the Tool interface and offered in both protocols. The worked example
of docs/BRING_YOUR_OWN.md is the tool under test (the code block is read from the doc), so the
documented code runs."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest
from fake_engine import ScriptedEngine

from tirl.config import ConfigError, load_config
from tirl.protocol import HermesProtocol, TagProtocol
from tirl.rollout import RolloutConfig, rollout
from tirl.tools.checks import ToolSetupError, check_tool
from tirl.tools.custom import load_custom_tool
from tirl.train import components as C
from tirl.types import Observation, StopReason, Task, ToolCall

DOC = Path(__file__).resolve().parent.parent / "docs" / "BRING_YOUR_OWN.md"
MARK = "<!-- example: my_tools/units.py"


@pytest.fixture
def my_tools(tmp_path, monkeypatch):
    """The doc's example module, written as my_tools/units.py on sys.path, with a few broken
    tools beside it for the error cases."""
    text = DOC.read_text()
    block = re.search(r"```python\n(.*?)```", text[text.index(MARK) :], re.DOTALL)
    pkg = tmp_path / "my_tools"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "units.py").write_text(block.group(1))
    (pkg / "broken.py").write_text(
        "from tirl.types import Observation\n"
        "class NotATool:\n    name = 'x'\n"
        "class SyncRun:\n"
        "    name, description, main_arg = 'sync', 'd', 'q'\n"
        "    parameters = {'type': 'object', 'properties': {'q': {'type': 'string'}}}\n"
        "    def run(self, call, session): return Observation(ok=True, output='')\n"
        "    async def close_session(self, session): pass\n"
        "    async def aclose(self): pass\n"
        "class Raises:\n    def __init__(self):\n        raise RuntimeError('no licence key')\n"
    )
    (pkg / "bad_import.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg
    for name in [m for m in sys.modules if m == "my_tools" or m.startswith("my_tools.")]:
        del sys.modules[name]


def _run(tool, **arguments) -> Observation:
    return asyncio.run(tool.run(ToolCall(name=tool.name, arguments=arguments), session="s"))


def test_loaded_from_config_with_kwargs(my_tools):
    cfg = load_config(None, ["tools.custom=[{target: 'my_tools.units:UnitConverter', kwargs: {digits: 2}}]", "tools.python=false"])
    (tool,) = C.build_tools(cfg)
    assert type(tool).__name__ == "UnitConverter" and tool.digits == 2
    assert _run(tool, query="3.5 km in mi").output == "2.17 mi"
    bad = _run(tool, query="three parsecs")
    assert not bad.ok and bad.output.startswith("Error: write VALUE UNIT in UNIT")
    # a bare string entry constructs it without arguments; the saved form reloads
    cfg = load_config(None, ["tools.custom=[my_tools.units:UnitConverter]"])
    assert cfg.tools.custom[0].target == "my_tools.units:UnitConverter" and cfg.tools.custom[0].kwargs == {}
    again = load_config(None, [f"tools.custom={json.dumps(cfg.model_dump(mode='json')['tools']['custom'])}"])
    assert again.tools.custom == cfg.tools.custom


def test_offered_in_both_protocols_and_the_agent_loop(my_tools, tiny, echo_tool):
    tool = load_custom_tool("my_tools.units:UnitConverter", {"digits": 2})
    task = Task(id="u1", prompt="How many miles is 3.5 km?", answer="2.17")
    tag = TagProtocol([echo_tool, tool])
    assert "- <convert>query</convert>: Convert a length between units" in tag.system_prompt()
    eng = ScriptedEngine(tiny.tokenizer, ["<convert>3.5 km in mi</convert>", "<answer>\\boxed{2.17}</answer>"])
    (tr,) = asyncio.run(rollout(eng, tag, [task], RolloutConfig(group_size=1)))[0]
    assert tr.stop_reason is StopReason.ANSWER and tr.answer == "2.17"
    assert (tr.steps[0].call.name, tr.steps[0].call.arguments, tr.steps[0].observation.output) == ("convert", {"query": "3.5 km in mi"}, "2.17 mi")

    hermes = HermesProtocol([tool], tiny.tokenizer)
    assert '"name": "convert"' in hermes.system_prompt() and '"required": ["query"]' in hermes.system_prompt()
    call = "<tool_call>\n" + json.dumps({"name": "convert", "arguments": {"query": "1 mi in km"}}) + "\n</tool_call>"
    eng = ScriptedEngine(tiny.tokenizer, [call, "So \\boxed{1.61}.<|im_end|>"], marker="<|im_start|>tool")
    (tr,) = asyncio.run(rollout(eng, hermes, [task], RolloutConfig(group_size=1)))[0]
    assert tr.steps[0].observation.output == "1.61 km" and tr.answer == "1.61"


def test_json_body_tool_in_the_tag_protocol(echo_tool):
    class Add:
        name, description, main_arg = "add", "Add two integers.", ""
        parameters = {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "note": {"type": "string"}},
            "required": ["a", "b"],
        }

        async def run(self, call, session):
            return Observation(ok=True, output=str(call.arguments["a"] + call.arguments["b"]))

        async def close_session(self, session):
            pass

        async def aclose(self):
            pass

    tag = TagProtocol([check_tool(Add(), "test")])
    assert '<add>{"a": integer, "b": integer, "note"?: string}</add>: Add two integers.' in tag.system_prompt()
    call = tag.parse_turn('<think>sum</think><add>\n{"a": 2, "b": 40}\n</add>', False).call
    assert call.error is None and call.arguments == {"a": 2, "b": 40}
    assert tag.parse_turn('<add>```json\n{"a": 1, "b": 1}\n```</add>', False).call.arguments == {"a": 1, "b": 1}
    for body, expect in [
        ("[1, 2]", "must be a JSON object"),
        ('{"a": 1}', "missing argument(s) for add: b"),
        ("", "missing argument"),
        ("{a: 1}", "JSON object"),
    ]:
        err = tag.parse_turn(f"<add>{body}</add>", False).call.error
        assert err and expect in err, (body, err)


@pytest.mark.parametrize(
    "target, kwargs, expect",
    [
        ("no_such_package_xyz.tools:Tool", {}, "cannot import 'no_such_package_xyz.tools' (no module named 'no_such_package_xyz')"),
        ("my_tools.bad_import:Tool", {}, "importing 'my_tools.bad_import' failed (ModuleNotFoundError"),
        ("my_tools.units:NoSuchClass", {}, "'my_tools.units' has no 'NoSuchClass'"),
        ("my_tools.units:FACTORS", {}, "is a dict, not a class or function"),
        ("my_tools.units:UnitConverter", {"precision": 3}, "unexpected keyword argument 'precision'"),
        ("my_tools.broken:Raises", {}, "RuntimeError: no licence key"),
        ("my_tools.broken:NotATool", {}, "is not a tirl Tool: it has no description, parameters, main_arg, run"),
        ("my_tools.broken:SyncRun", {}, "sync.run must be a coroutine function"),
    ],
)
def test_bad_custom_tools_are_one_line(my_tools, target, kwargs, expect):
    with pytest.raises(ToolSetupError) as e:
        load_custom_tool(target, kwargs)
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_tool_checks(my_tools):
    tool = load_custom_tool("my_tools.units:UnitConverter")
    for attr, value, expect in [
        ("name", "two words", "cannot be a tag name"),
        ("name", "answer", "is a tag the protocols use"),
        ("main_arg", "text", "main_arg 'text' must be one of its properties (query)"),
        ("parameters", {"type": "string"}, "JSON schema of an object"),
    ]:
        broken = load_custom_tool("my_tools.units:UnitConverter")
        setattr(broken, attr, value)
        with pytest.raises(ToolSetupError, match=re.escape(expect)):
            check_tool(broken, "t")
    assert check_tool(tool, "t") is tool
    # two tools of one name: the second is refused, and what was started is closed
    cfg = load_config(None, ["tools.python=false", "tools.custom=[my_tools.units:UnitConverter, my_tools.units:UnitConverter]"])
    with pytest.raises(ToolSetupError, match="two tools are called 'convert'"):
        C.build_tools(cfg)


def test_config_checks_the_entry_shape():
    with pytest.raises(ConfigError, match="package.module:ClassName"):
        load_config(None, ["tools.custom=[my_tools.units.UnitConverter]"])
    with pytest.raises(ConfigError, match="unknown field"):
        load_config(None, ["tools.custom=[{target: 'a:B', kw: {}}]"])


def test_tool_custom_command_line(my_tools):
    from typer.testing import CliRunner

    from tirl.cli.main import app

    r = CliRunner().invoke(app, ["tool", "custom", "my_tools.units:UnitConverter", "--kwargs", '{"digits": 1}', "--input", "1 mi in km"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["output"] == "1.6 km"
    r = CliRunner().invoke(app, ["tool", "custom", "my_tools.units:UnitConverter", "--args", '{"query": "2 m in cm"}'])
    assert json.loads(r.stdout)["output"] == "200.0 cm"
    r = CliRunner().invoke(app, ["tool", "custom", "my_tools.units:UnitConverter", "--kwargs", "[1]"])
    assert r.exit_code == 2 and "--kwargs must be a JSON object" in r.stderr
