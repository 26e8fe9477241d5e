"""Every bad input a careless user gives the command line ends in one line on stderr that
names what is wrong, and exit code 2: never a traceback, never a silent success.

Each case runs the ``tirl`` command line in this process (typer's runner; the error handling
is the same as ``python -m tirl``), with the inputs written by the ``inputs`` fixture into a
temporary directory."""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tirl.cli.main import app

pytestmark = pytest.mark.timeout(300)
GOOD = {"id": "a", "prompt": "What is 1+1?", "answer": "2"}


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    _jsonl(d / "bad_line.jsonl", [GOOD, "{not json", {**GOOD, "id": "c"}])
    _jsonl(d / "no_answer.jsonl", [{"id": "a", "prompt": "p"}])
    _jsonl(d / "null_answer.jsonl", [{**GOOD, "answer": None}])
    _jsonl(d / "bool_answer.jsonl", [{**GOOD, "answer": True}])
    (d / "nan_answer.jsonl").write_text('{"id": "a", "prompt": "p", "answer": NaN}\n')
    (d / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    (d / "latin1.jsonl").write_bytes(b'{"id": "a", "prompt": "caf\xe9", "answer": "2"}\n')
    _jsonl(d / "dup_ids.jsonl", [GOOD, GOOD])
    (d / "huge_int.jsonl").write_text('{"id": "a", "prompt": "p", "answer": ' + "9" * 5000 + "}\n")
    (d / "deep.jsonl").write_text('{"id": "a", "prompt": "p", "answer": "2", "meta": ' + "[" * 100000 + "]" * 100000 + "}\n")
    (d / "empty.jsonl").write_text("")
    _jsonl(d / "too_long.jsonl", [{**GOOD, "prompt": "word " * 9000}])
    (d / "blank_lines.jsonl").write_text("\n\n  \n")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"question": ["q"], "solution": ["2"]}), d / "wrong_cols.parquet")
    except ImportError:
        pass
    (d / "not_a_model").mkdir()
    (d / "not_a_model" / "readme.txt").write_text("hello")
    (d / "broken_model").mkdir()
    (d / "broken_model" / "config.json").write_text("{broken")
    (d / "a_file").write_text("x")
    (d / "unfinished_run").mkdir()
    (d / "unfinished_run" / "config.yaml").write_text("run: {name: unfinished_run}\n")
    (d / "binary.py").write_bytes(b"\x00\xff\xfe\x00")
    # Hugging Face datasets: a GSM8K-shaped file without the '####' answer line, and a
    # DatasetDict with a train split only
    _jsonl(d / "hf_no_marker.jsonl", [{"question": "q", "answer": "no marker"}])
    try:
        import datasets

        datasets.DatasetDict({"train": datasets.Dataset.from_list([{"question": "q", "answer": "#### 1"}])}).save_to_disk(d / "hf_train_only")
    except ImportError:
        pass
    return d


def _cases(d: Path) -> list[tuple[str, list[str], str]]:
    """(case id, argv after ``tirl``, a piece the one line must contain)."""
    ev = ["eval", "--model", "tiny-random", "--n", "1", "--n-tasks", "2", "--max-response-tokens", "8"]
    cases = []
    for name, expect in [
        ("bad_line.jsonl", "line 2"),
        ("no_answer.jsonl", "answer"),
        ("null_answer.jsonl", "null"),
        ("bool_answer.jsonl", "boolean"),
        ("nan_answer.jsonl", "answer"),
        ("latin1.jsonl", "UTF-8"),
        ("dup_ids.jsonl", "repeats"),
        ("huge_int.jsonl", "line 1"),
        ("deep.jsonl", "line 1"),
        ("empty.jsonl", "no tasks"),
        ("blank_lines.jsonl", "no tasks"),
        ("wrong_cols.parquet", "prompt"),
        ("missing.jsonl", "not found"),
    ]:
        cases.append((f"task-{name}", ev + ["--task", str(d / name)], expect))
    cases += [
        ("model-missing", ["eval", "--model", str(d / "nope"), "--n-tasks", "1"], "no such directory"),
        ("model-misspelled", ["eval", "--model", "smolm2-135m", "--n-tasks", "1"], "smollm2-135m-instruct"),
        ("model-not-a-model", ["eval", "--model", str(d / "not_a_model"), "--n-tasks", "1"], "config.json"),
        ("model-unfinished-run", ["eval", "--model", str(d / "unfinished_run"), "--n-tasks", "1"], "no final_model yet"),
        ("model-broken-config", ["eval", "--model", str(d / "broken_model"), "--n-tasks", "1"], "broken_model"),
        ("eval-split", ev + ["--split", "tset"], "split"),
        ("eval-protocol", ev + ["--protocol", "xml"], "protocol"),
        ("eval-difficulty", ev + ["--difficulty", "9"], "difficulty"),
        ("eval-out-file", ev + ["--out", str(d / "a_file")], "a_file"),
        ("rollout-out-file", ["rollout", "--model", "tiny-random", "--n-tasks", "1", "--out", str(d / "a_file")], "a_file"),
        ("rollout-out-under-file", ["rollout", "--model", "tiny-random", "--n-tasks", "1", "--out", str(d / "a_file" / "x")], "cannot write"),
        ("eval-response-over-context", ev[:-1] + ["9000"], "leaves no room"),
        ("eval-prompts-over-context", ev + ["--task", str(d / "too_long.jsonl")], "none is left"),
        ("eval-task-source", ev + ["--task", "gsm8k"], "unknown task source"),
        ("eval-task-dir", ev + ["--task", str(d / "not_a_model") + ".jsonl"], "not found"),
        ("sft-source-not-trajectories", ["sft", "model.name=tiny-random", f"sft.source={d / 'bad_line.jsonl'}"], "not a tirl trajectory"),
        ("sft-source-binary", ["sft", "model.name=tiny-random", f"sft.source={d / 'binary.py'}"], "not a tirl trajectory"),
        ("rollout-top-p", ["rollout", "--model", "tiny-random", "--n-tasks", "1", "--top-p", "1.5"], "top"),
        ("sft-out-file", ["sft", "model.name=tiny-random", "sft.n_examples=2", "--out", str(d / "a_file")], "a_file"),
        ("repair-out-file", ["repair", "model.name=tiny-random", "--n-tasks", "1", "--out", str(d / "a_file")], "a_file"),
        ("flywheel-out-file", ["flywheel", "model.name=tiny-random", "--n-tasks", "1", "--out", str(d / "a_file")], "a_file"),
        ("repair-task-file", ["repair", "model.name=tiny-random", f"task.name={d / 'latin1.jsonl'}", "repair.repairer=policy"], "UTF-8"),
        ("sft-missing-source", ["sft", "model.name=tiny-random", f"sft.source={d / 'nope.jsonl'}"], "nope.jsonl"),
        ("tool-file-missing", ["tool", "python", "--file", str(d / "nope.py")], "nope.py"),
        ("tool-file-dir", ["tool", "python", "--file", str(d)], "directory"),
        ("tool-file-binary", ["tool", "python", "--file", str(d / "binary.py")], "binary.py"),
        ("tool-timeout-inf", ["tool", "python", "--code", "1", "--timeout", "inf"], "timeout"),
        ("report-missing", ["report", str(d / "nope")], "no such directory"),
        ("report-not-a-run", ["report", str(d / "not_a_model")], "not a tirl run directory"),
        ("report-a-file", ["report", str(d / "a_file")], "not a directory"),
        ("report-out-dir", ["report", str(d / "unfinished_run"), "--out", str(d)], "is a directory"),
        ("report-steps-zero", ["report", str(d / "unfinished_run"), "--steps", "0"], "steps"),
        ("runs-missing", ["runs", str(d / "nope")], "no such directory"),
        ("train-log-backend", ["train", "grpo", "log.backends=[tb]"], "log.backends"),
        ("train-lr-inf", ["train", "grpo", "model.name=tiny-random", "optim.lr=inf"], "optim.lr"),
        ("train-run-name", ["train", "grpo", "run.name=../../x"], "run.name"),
        ("train-unknown-field", ["train", "grpo", "optim.lrr=1"], "optim.lrr"),
        ("train-unknown-recipe", ["train", "grpoo"], "grpoo"),
        (
            "train-prompts-over-context",
            ["train", "grpo", "model.name=tiny-random", f"task.name={d / 'too_long.jsonl'}", f"run.out_dir={d / 'runs'}", "run.name=long"],
            "none is left",
        ),
        ("train-empty-tasks", ["train", "grpo", "model.name=tiny-random", f"task.name={d / 'empty.jsonl'}", f"run.out_dir={d / 'runs'}"], "no tasks"),
        # tools the user brings (tools.custom, tools.mcp) and Hugging Face datasets (task.name=hf)
        ("custom-tool-no-module", ev + ["tools.custom=[no_such_module_xyz:Tool]"], "no module named 'no_such_module_xyz'"),
        ("custom-tool-not-a-tool", ev + ["tools.custom=[json:JSONDecoder]"], "not a tirl Tool"),
        ("custom-tool-bad-kwarg", ev + ["tools.custom=[{target: 'json:JSONEncoder', kwargs: {colour: red}}]"], "colour"),
        ("custom-tool-target-form", ev + ["tools.custom=[json.JSONDecoder]"], "package.module:ClassName"),
        ("custom-tool-name-clash", ev + ["tools.custom=[{target: 'tirl.tools.calculator:Calculator'}]", "tools.calculator=true"], "two tools"),
        ("mcp-command-missing", ev + ["tools.mcp=[{command: no-such-mcp-server-xyz}]"], "cannot start the MCP server"),
        ("mcp-server-exits", ev + ["tools.mcp=[{command: 'python3 -c \"raise SystemExit(7)\"'}]"], "did it exit"),
        ("mcp-two-transports", ev + ["tools.mcp=[{command: x, url: 'http://127.0.0.1:9/mcp'}]"], "exactly one"),
        ("hf-no-path", ev + ["--task", "hf"], "task.path"),
        ("hf-path-missing", ev + ["--task", "hf", f"task.path={d / 'no_such_dataset'}"], "no such file"),
        ("hf-no-marker", ev + ["--task", "hf", f"task.path={d / 'hf_no_marker.jsonl'}", "task.preset=gsm8k"], "####"),
        ("hf-missing-column", ev + ["--task", "hf", f"task.path={d / 'hf_no_marker.jsonl'}", "task.preset=math"], "missing column"),
        ("hf-missing-split", ev + ["--task", "hf", f"task.path={d / 'hf_train_only'}", "task.preset=gsm8k"], "no split 'test' (splits: train)"),
        (
            "train-hf-path-missing",
            ["train", "grpo", "model.name=tiny-random", "task.name=hf", "task.path=./no/such/dir", f"run.out_dir={d / 'runs'}", "run.name=hf"],
            "no such file",
        ),
    ]
    return cases


def _run(argv: list[str], cwd: Path):
    here = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, argv)
    finally:
        os.chdir(here)


@pytest.mark.parametrize("case", [c[0] for c in _cases(Path("x"))])
def test_every_bad_input_is_one_line(inputs, case):
    argv, expect = {c[0]: c[1:] for c in _cases(inputs)}[case]
    r = _run(argv, inputs)
    crash = "".join(traceback.format_exception(r.exception)) if r.exception and not isinstance(r.exception, SystemExit) else ""
    # A usage error (typer's own check of an option's range) comes in a box: its text is the line.
    lines = [line.strip(" │╭╮╰╯─") for line in r.stderr.splitlines()]
    err_lines = [line for line in lines if line and not line.startswith(("Loading weights", "Writing model"))]
    last = err_lines[-1] if err_lines else ""
    assert not crash, f"{case}: traceback\n{crash[-1500:]}"
    assert r.exit_code == 2, f"{case}: exit code {r.exit_code}: {last[:300]!r}"
    assert expect.lower() in last.lower(), f"{case}: the line lacks {expect!r}: {last[:300]!r}"
