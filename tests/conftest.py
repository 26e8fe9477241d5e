import asyncio

import pytest

from tirl.types import Observation, ToolCall


class EchoTool:
    """A deterministic in-process tool for loop tests: echoes its argument, remembers per-session
    call counts (to check session handling), fails on 'boom'."""

    name = "python"
    description = "Echo tool used in tests."
    parameters = {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}
    main_arg = "code"

    def __init__(self):
        self.calls: dict[str, int] = {}
        self.closed: set[str] = set()

    async def run(self, call: ToolCall, session: str) -> Observation:
        await asyncio.sleep(0)
        self.calls[session] = self.calls.get(session, 0) + 1
        code = call.arguments["code"]
        if "boom" in code:
            return Observation(ok=False, output="Traceback: boom", error="RuntimeError")
        return Observation(ok=True, output=f"echo {code.strip()[:20]} #{self.calls[session]}", latency_ms=0.1)

    async def close_session(self, session: str) -> None:
        self.closed.add(session)

    async def aclose(self) -> None:
        pass


@pytest.fixture
def echo_tool():
    return EchoTool()


@pytest.fixture(scope="session")
def tiny():
    from tirl.models import load_model

    return load_model("tiny-random")


@pytest.fixture(scope="session")
def elpo_run(tmp_path_factory):
    """A finished ELPO run written by the real trainer with a scripted policy (tests/report_runs.py),
    shared by the report tests; read it, never write into it."""
    from report_runs import scripted_run

    return scripted_run(tmp_path_factory.mktemp("elpo_run"))
