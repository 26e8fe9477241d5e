"""The sandbox's front door: its config is validated and ``tirl tool python`` prints one JSON
object. Where bubblewrap does not work, the sandbox never falls back to running the model's code
unisolated on its own: ``isolation: auto`` and ``bwrap`` refuse in one line that names the reason
and the fix, and only an explicit ``none`` runs without it (RELIABILITY.md §1)."""

from __future__ import annotations

import json
import warnings

import pytest
from typer.testing import CliRunner

from tirl.cli.main import app
from tirl.tools import PythonSandbox, SandboxConfig
from tirl.tools.python_sandbox import launcher


@pytest.fixture
def broken_bwrap(monkeypatch):
    monkeypatch.setattr(launcher, "_bwrap_self_check", lambda argv: "bwrap: setting up uid map: Permission denied")


@pytest.mark.parametrize("mode", ["auto", "bwrap"])
def test_no_silent_fallback(broken_bwrap, mode):
    with pytest.raises(launcher.SandboxUnavailable, match="Permission denied") as e:
        launcher.resolve_isolation(SandboxConfig(isolation=mode))
    if mode == "auto":
        assert "tools.isolation=none" in str(e.value) and "apt-get install bubblewrap" in str(e.value)


def test_none_must_be_named(broken_bwrap):
    assert launcher.resolve_isolation(SandboxConfig(isolation="none")) == "none"


def test_tool_python_reports_it_as_its_one_json_object(broken_bwrap):
    r = CliRunner().invoke(app, ["tool", "python", "--code", "1+1"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    (line,) = r.output.strip().splitlines()
    record = json.loads(line)
    assert not record["ok"] and "needs bubblewrap" in record["output"]


def test_cli_prints_one_json_object():
    from typer.testing import CliRunner

    from tirl.cli.tool_cmd import tool_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ok = CliRunner().invoke(tool_app, ["python", "--code", "print('hi')\n6 * 7"])
        slow = CliRunner().invoke(tool_app, ["python", "--code", "while True: pass", "--timeout", "0.5"])
    assert ok.exit_code == 0, ok.output
    record = json.loads(ok.stdout)
    assert set(record) == {"ok", "output", "error", "timed_out", "latency_ms"}
    assert record["ok"] and record["output"] == "hi\n42\n"
    assert json.loads(slow.stdout)["timed_out"]


def test_config_is_validated():
    with pytest.raises(ValueError, match="isolation"):
        PythonSandbox(isolation="docker")
    with pytest.raises(ValueError, match="workers"):
        SandboxConfig(workers=0).validate()
