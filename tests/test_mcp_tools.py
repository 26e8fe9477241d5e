"""MCP tools against a real MCP server (tests/mcp_server.py, written with the official SDK),
launched over stdio by the client and over streamable HTTP by the test: schemas become tool
specs, calls round-trip through both protocols and the agent loop, failures and timeouts are
observations, a crashed server is restarted, and closing the tools stops the server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_engine import ScriptedEngine

from tirl.config import MCPServerSection, load_config
from tirl.protocol import HermesProtocol, TagProtocol
from tirl.rollout import RolloutConfig, rollout
from tirl.tools.checks import ToolSetupError
from tirl.tools.mcp import MCPServerConfig, MCPStartError, main_arg_for, open_mcp_tools, tag_safe
from tirl.types import StopReason, Task, ToolCall

pytestmark = pytest.mark.timeout(180)
SERVER = str(Path(__file__).with_name("mcp_server.py"))
STDIO = [sys.executable, SERVER]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes only once reaped; the SDK waits for its child
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _close(tools) -> None:
    async def go():
        for t in tools:
            await t.aclose()

    asyncio.run(go())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pid_file = tmp_path_factory.mktemp("mcp") / "pid"
    tools = open_mcp_tools(MCPServerConfig(command=STDIO, env={"MCP_TEST_PID_FILE": str(pid_file)}, timeout_s=2.0, max_output_chars=200))
    yield {t.name: t for t in tools}, int(pid_file.read_text())
    _close(tools)


def call(tool, **arguments):
    return asyncio.run(tool.run(ToolCall(name=tool.name, arguments=arguments), session="s"))


def test_config_section_and_tool_dataclass_agree():
    # build_tools converts one into the other field for field (MCPServerConfig(**section.model_dump()))
    section = MCPServerSection(command=["x"])
    assert set(section.model_dump()) == {f.name for f in dataclasses.fields(MCPServerConfig)}
    defaults = MCPServerConfig(command=["x"])
    for f in dataclasses.fields(MCPServerConfig):
        assert getattr(defaults, f.name) == getattr(section, f.name), f.name


def test_schemas_become_tool_specs(server):
    tools, _ = server
    assert set(tools) == {"echo", "add", "count", "fail", "sleep", "crash"}
    echo, add = tools["echo"], tools["add"]
    assert echo.description == "Return the text unchanged."
    assert echo.parameters["properties"]["text"]["type"] == "string" and echo.parameters["required"] == ["text"]
    assert set(add.parameters["properties"]) == {"a", "b"}
    # the documented main_arg rule: the one required string argument, else a JSON object
    assert {n: t.main_arg for n, t in tools.items()} == {"echo": "text", "add": "", "count": "", "fail": "message", "sleep": "", "crash": "code"}


def test_main_arg_rule():
    s = {"type": "string"}
    assert main_arg_for({"properties": {"query": s, "topk": {"type": "integer"}}, "required": ["query"]}) == "query"
    assert main_arg_for({"properties": {"q": s}}) == "q"  # one optional string argument
    assert main_arg_for({"properties": {"q": s, "r": s}}) == ""  # two optional: JSON
    assert main_arg_for({"properties": {"q": s, "r": s}, "required": ["q", "r"]}) == ""
    assert main_arg_for({"properties": {"n": {"type": "integer"}}, "required": ["n"]}) == ""
    assert main_arg_for({"properties": {"q": {"type": ["string", "null"]}}, "required": ["q"]}) == "q"
    assert main_arg_for({}) == ""
    assert tag_safe("get weather/now") == "get_weather_now" and tag_safe("3d") == "_3d"


def test_round_trip(server):
    tools, _ = server
    assert call(tools["echo"], text="héllo <b>").output == "héllo <b>"
    obs = call(tools["add"], a=2, b=40)
    assert obs.ok and obs.output == "42" and not obs.timed_out and obs.latency_ms > 0
    # state lives on the server: one counter across calls (and trajectories)
    first, second = call(tools["count"]).output, call(tools["count"]).output
    assert int(second.split()[-1]) == int(first.split()[-1]) + 1
    long = call(tools["echo"], text="x" * 1000)
    assert long.output.startswith("x" * 200) and long.output.endswith("...[truncated 800 chars]")


def test_failures_are_observations(server):
    tools, _ = server
    obs = call(tools["fail"], message="the disk is full")
    assert not obs.ok and not obs.infra_error and "the disk is full" in obs.output and obs.output.startswith("Error")
    obs = call(tools["add"], a="x")  # the server rejects the arguments
    assert not obs.ok and not obs.infra_error and "validation" in obs.output.lower()
    t0 = time.perf_counter()
    obs = call(tools["sleep"], seconds=30)
    assert obs.timed_out and not obs.ok and not obs.infra_error and "2 s" in obs.output
    assert time.perf_counter() - t0 < 10
    assert call(tools["echo"], text="still here").output == "still here"  # the connection survived


def test_crashed_server_is_restarted(server):
    tools, pid = server
    conn = tools["echo"].conn
    before = conn.restarts
    obs = call(tools["crash"], code="now")
    # the call crashed the server, and crashed the restarted one again: tirl's machinery failed
    assert obs.infra_error and not obs.ok and "unavailable" in obs.output
    obs = call(tools["echo"], text="back")
    assert obs.ok and obs.output == "back" and conn.restarts >= before + 2
    assert not _alive(pid)


def test_through_both_protocols_and_the_agent_loop(server, tiny):
    tools, _ = server
    task = Task(id="m1", prompt="What is 2+40?", answer="42")
    tag = TagProtocol([tools["echo"], tools["add"]])
    prompt = tag.system_prompt()
    assert "<echo>text</echo>: Return the text unchanged." in prompt
    assert '<add>{"a": integer, "b": integer}</add>: Add two integers.' in prompt
    turns = ['<add>{"a": 2, "b": 40}</add>', "<echo>done</echo>", "<answer>\\boxed{42}</answer>"]
    eng = ScriptedEngine(tiny.tokenizer, turns)
    (tr,) = asyncio.run(rollout(eng, tag, [task], RolloutConfig(group_size=1)))[0]
    assert tr.stop_reason is StopReason.ANSWER and tr.answer == "42"
    assert [(s.call.name, s.call.arguments, s.observation.output) for s in tr.steps if s.call] == [
        ("add", {"a": 2, "b": 40}, "42"),
        ("echo", {"text": "done"}, "done"),
    ]
    # a JSON body that is not an object, or lacks an argument, is a malformed call the model reads
    bad = tag.parse_turn('<add>{"a": 2}</add>', False).call
    assert bad.error and "b" in bad.error
    assert tag.parse_turn("<add>2 + 40</add>", False).call.error.startswith("the input of <add> must be a JSON object")

    hermes = HermesProtocol([tools["add"]], tiny.tokenizer)
    assert json.dumps(tools["add"].parameters["properties"]["a"]) in hermes.system_prompt()
    call_text = "<tool_call>\n" + json.dumps({"name": "add", "arguments": {"a": 1, "b": 2}}) + "\n</tool_call>"
    eng = ScriptedEngine(tiny.tokenizer, [call_text, "It is \\boxed{3}.<|im_end|>"], marker="<|im_start|>tool")
    (tr,) = asyncio.run(rollout(eng, hermes, [task], RolloutConfig(group_size=1)))[0]
    assert tr.steps[0].observation.output == "3" and tr.answer == "3"


def test_config_builds_filters_prefixes_and_closes(tmp_path):
    from tirl.train import components as C

    pid_file = tmp_path / "pid"
    entry = {"command": STDIO, "tools": ["echo", "add"], "prefix": "srv_", "main_args": {"add": "a"}, "env": {"MCP_TEST_PID_FILE": str(pid_file)}}
    cfg = load_config(None, ["tools.python=false", "tools.calculator=true", f"tools.mcp=[{json.dumps(entry)}]"])
    tools = C.build_tools(cfg)
    try:
        assert [t.name for t in tools] == ["calculator", "srv_echo", "srv_add"]
        assert tools[2].main_arg == "a"
        assert call(tools[1], text="hi").output == "hi"  # the server's own name is called
        pid = int(pid_file.read_text())
        assert _alive(pid)
    finally:
        _close(tools)
    deadline = time.time() + 10
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "closing the run's tools must stop the stdio server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streamable_http_server(tmp_path):
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, SERVER, "--http", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, (tmp_path / "server.log").read_text()[-2000:]
                time.sleep(0.1)
        tools = {t.name: t for t in open_mcp_tools(MCPServerConfig(url=f"http://127.0.0.1:{port}/mcp", headers={"X-Test": "$HOME"}, timeout_s=2))}
        try:
            assert call(tools["echo"], text="over http").output == "over http"
            assert call(tools["add"], a=1, b=2).output == "3"
            assert call(tools["sleep"], seconds=30).timed_out
            assert not call(tools["fail"], message="m").ok
        finally:
            _close(tools.values())
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def test_start_failures_are_one_line(tmp_path):
    with pytest.raises(MCPStartError, match="cannot start the MCP server.*FileNotFoundError"):
        open_mcp_tools(MCPServerConfig(command=["no-such-mcp-server-xyz"]))
    with pytest.raises(MCPStartError, match="stderr ends: .*no configuration given"):
        open_mcp_tools(MCPServerConfig(command=[sys.executable, "-c", "raise SystemExit('no configuration given')"]))
    t0 = time.perf_counter()
    with pytest.raises(MCPStartError, match="within startup_timeout_s=1"):
        open_mcp_tools(MCPServerConfig(command=[sys.executable, "-c", "import time; time.sleep(60)"], startup_timeout_s=1))
    assert time.perf_counter() - t0 < 15
    with pytest.raises(MCPStartError, match="127.0.0.1:9"):
        open_mcp_tools(MCPServerConfig(url="http://127.0.0.1:9/mcp", startup_timeout_s=5))
    with pytest.raises(ToolSetupError, match="no tool 'nope'.*it offers: echo"):
        open_mcp_tools(MCPServerConfig(command=STDIO, tools=["echo", "nope"]))
    with pytest.raises(ToolSetupError, match="main_arg 'zzz'"):
        open_mcp_tools(MCPServerConfig(command=STDIO, tools=["echo"], main_args={"echo": "zzz"}))


def test_tool_mcp_command_line():
    from typer.testing import CliRunner

    from tirl.cli.main import app

    cmd = f"{sys.executable} {SERVER}"
    r = CliRunner().invoke(app, ["tool", "mcp", "--command", cmd, "--list"])
    assert r.exit_code == 0, r.output
    listed = [json.loads(line) for line in r.stdout.splitlines()]
    assert [t["name"] for t in listed][:2] == ["echo", "add"] and listed[1]["main_arg"] == ""
    r = CliRunner().invoke(app, ["tool", "mcp", "--command", cmd, "--call", "add", "--input", '{"a": 40, "b": 2}'])
    assert r.exit_code == 0 and json.loads(r.stdout)["output"] == "42"
    r = CliRunner().invoke(app, ["tool", "mcp", "--command", cmd, "--call", "echo", "--args", '{"text": "hi"}'])
    assert r.exit_code == 0 and json.loads(r.stdout) | {"latency_ms": 0} == {
        "ok": True,
        "output": "hi",
        "error": None,
        "timed_out": False,
        "latency_ms": 0,
    }
    r = CliRunner().invoke(app, ["tool", "mcp", "--command", cmd, "--call", "nope"])
    assert r.exit_code == 2 and "no tool 'nope'" in r.stderr


def test_a_run_starts_and_stops_its_server(tmp_path, tiny):
    """`tirl eval` with an MCP server in the config: the server runs during the command (its
    tools are in the system prompt the model saw) and is stopped when the command ends."""
    from typer.testing import CliRunner

    from tirl.cli.main import app

    pid_file = tmp_path / "pid"
    entry = {"command": STDIO, "tools": ["echo"], "env": {"MCP_TEST_PID_FILE": str(pid_file)}}
    argv = ["eval", "--model", "tiny-random", "--n", "1", "--n-tasks", "1", "--max-response-tokens", "4", "--out", str(tmp_path / "out")]
    r = CliRunner().invoke(app, argv + ["tools.python=false", f"tools.mcp=[{json.dumps(entry)}]"])
    assert r.exit_code == 0, r.output[-2000:]
    (tr,) = [json.loads(line) for line in (tmp_path / "out" / "trajectories.jsonl").read_text().splitlines()]
    prompt = tiny.tokenizer.decode(tr["prompt_token_ids"])
    assert "<echo>text</echo>: Return the text unchanged." in prompt
    pid = int(pid_file.read_text())
    deadline = time.time() + 10
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def test_closing_one_tool_twice_keeps_the_others_connection():
    tools = open_mcp_tools(MCPServerConfig(command=STDIO, tools=["echo", "add"]))
    echo, add = tools
    asyncio.run(echo.aclose())
    asyncio.run(echo.aclose())
    assert call(add, a=1, b=1).output == "2"  # still connected: the server has one user left
    asyncio.run(add.aclose())
    obs = call(add, a=1, b=1)
    assert obs.infra_error and "closed" in obs.output


def test_a_training_run_with_brought_tools_and_an_hf_dataset(tmp_path, tiny):
    """`tirl train` on a Hugging Face dataset with a custom tool and an MCP server's tool: the
    tools are in the prompt, a step runs, and the server is stopped when the run ends."""
    import datasets
    from typer.testing import CliRunner

    from tirl.cli.main import app

    rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(6)]
    ds = datasets.Dataset.from_list(rows)
    datasets.DatasetDict({"train": ds.select(range(4)), "test": ds.select([4, 5])}).save_to_disk(tmp_path / "gsm")
    pid_file = tmp_path / "pid"
    mcp_entry = {"command": STDIO, "tools": ["add"], "env": {"MCP_TEST_PID_FILE": str(pid_file)}}
    args = [
        "train",
        "grpo",
        "--no-eval",
        "model.name=tiny-random",
        f"run.out_dir={tmp_path}",
        "run.name=r",
        "train.steps=1",
        "train.tasks_per_step=1",
    ]
    args += ["rollout.group_size=2", "rollout.max_response_tokens=8", "train.checkpoint_every=0", "tools.python=false"]
    args += ["task.name=hf", f"task.path={tmp_path / 'gsm'}", "task.preset=gsm8k", "task.n_train=4", "task.n_eval=2"]
    args += ["tools.custom=[tirl.tools.calculator:Calculator]", f"tools.mcp=[{json.dumps(mcp_entry)}]"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output[-2000:]
    (step,) = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert step["step"] == 1
    (traj,) = [json.loads(line) for line in (tmp_path / "r" / "trajectories" / "step_0001.jsonl").read_text().splitlines()[:1]]
    prompt = tiny.tokenizer.decode(traj["prompt_token_ids"])
    assert "<calculator>expression</calculator>" in prompt and '<add>{"a": integer, "b": integer}</add>' in prompt
    assert traj["gold"] in {"0", "2", "4", "6"}  # a training task of the hf dataset's train split
    pid = int(pid_file.read_text())
    deadline = time.time() + 10
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def test_the_sdks_load_only_when_used():
    # mcp and datasets are imported when a run configures an MCP server or an hf task, not before
    code = "import sys, tirl.train.components, tirl.cli.main, tirl.tasks; print(sorted({m.split('.')[0] for m in sys.modules} & {'mcp', 'datasets'}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
