"""The calculator tool: exact values, errors as observations, bounded work."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from tirl.tools import Calculator, Tool, make_tool
from tirl.tools.calculator import evaluate
from tirl.types import ToolCall


@pytest.fixture(scope="module")
def calc():
    return Calculator()


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("1 + 1", "2"),
        ("2 * (3 + 4) - 5", "9"),
        ("7 / 2", "3.5"),
        ("7 // 2", "3"),
        ("-7 % 3", "2"),
        ("2 ** 10", "1024"),
        ("2^10", "1024"),  # calculator notation
        ("2^3 * 2", "16"),  # ^ binds like **, tighter than *
        ("-3 ** 2", "-9"),
        ("+(4)", "4"),
        ("0.1 + 0.2", "0.3"),
        ("sqrt(16)", "4"),
        ("sqrt(2)", "1.4142135623731"),
        ("abs(-2.5)", "2.5"),
        ("round(2.675, 2)", "2.67"),
        ("round(7.5)", "8"),
        ("min(3, 1, 2) + max(4, 9)", "10"),
        ("pi", "3.14159265358979"),
        ("e ** 0", "1"),
        ("log(8, 2)", "3"),
        ("factorial(20)", "2432902008176640000"),
        ("12345678901234567890 * 98765432109876543210", "1219326311370217952237463801111263526900"),
        ("2 ** -2", "0.25"),
    ],
)
def test_values(calc, expression, expected):
    obs = calc.compute(expression)
    assert obs.ok and obs.error is None, obs
    assert obs.output == expected


def test_exact_integers():
    assert evaluate("3 ** 200") == 3**200
    assert math.isclose(evaluate("sin(pi / 6)"), 0.5)


@pytest.mark.parametrize(
    "expression, fragment",
    [
        ("1 / 0", "ZeroDivisionError"),
        ("sqrt(-1)", "math domain error"),
        ("x + 1", "unknown name 'x'"),
        ("__import__('os')", "unknown function '__import__'"),
        ("__import__('os').system('true')", "unknown function"),
        ("(1).__class__", "not allowed"),
        ("'a' * 3", "not allowed"),
        ("[1, 2]", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("1 +", "not an arithmetic expression"),
        ("min()", "TypeError"),
        ("round(1.5, 0.5)", "digits must be an integer"),
        ("(-8) ** (1 / 3)", "complex"),
        ("1e308 * 10", "too large"),
        ("(10 ** 1000) / 3", "OverflowError"),
        ("factorial(10 ** 6)", "factorial takes integers up to"),
        ("1" * 3000, "longer than"),
        ("(" * 300 + "1" + ")" * 300, "Error"),
    ],
)
def test_errors_are_observations(calc, expression, fragment):
    obs = calc.compute(expression)
    assert not obs.ok and not obs.infra_error and not obs.timed_out
    assert fragment in obs.output and obs.output.startswith("Error: ")
    assert obs.error and fragment.split()[0] in obs.output


@pytest.mark.parametrize("expression", ["9**9**9", "2 ** 10 ** 10", "10 ** 1000 * 10 ** 1000", "99999999 ** 99999999", "2 ^ 3 ^ 4 ^ 5"])
def test_power_bomb_is_refused_quickly(calc, expression):
    t0 = time.perf_counter()
    obs = calc.compute(expression)
    assert time.perf_counter() - t0 < 0.5
    assert not obs.ok and "too large" in obs.output


def test_tool_protocol(calc):
    assert isinstance(calc, Tool) and isinstance(make_tool("calculator"), Calculator)
    assert calc.name == "calculator" and calc.main_arg == "expression"
    obs = asyncio.run(calc.run(ToolCall(name="calculator", arguments={"expression": "6 * 7"}), session="s"))
    assert obs.ok and obs.output == "42"
    bad = asyncio.run(calc.run(ToolCall(name="calculator", arguments={"expr": "1"}), session="s"))
    assert not bad.ok and "'expression'" in bad.output
    malformed = asyncio.run(calc.run(ToolCall(name="calculator", arguments={}, error="bad json"), session="s"))
    assert not malformed.ok and malformed.output == "bad json"
    asyncio.run(calc.close_session("s"))
    asyncio.run(calc.aclose())


def test_cli_prints_one_json_object():
    import json

    from typer.testing import CliRunner

    from tirl.cli.tool_cmd import tool_app

    result = CliRunner().invoke(tool_app, ["calculator", "--expression", "2^10 / 4"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "ok": True,
        "output": "256",
        "error": None,
        "timed_out": False,
        "latency_ms": json.loads(result.stdout)["latency_ms"],
    }
