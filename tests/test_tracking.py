"""``log.backends``: a real run (tests/report_runs.py) logged to Weights & Biases (offline) and to
MLflow (a local file store), then read back: every step's scalars equal metrics.jsonl's, the
config, the evaluation tables and the per-step trajectory tables are there, a resumed run
continues the same tracked runs, and a missing package or a backend that fails mid-run is one
line, never a traceback or a lost metric."""

from __future__ import annotations

import json
import math
import struct
import sys

import pytest
from report_runs import scripted_run
from typer.testing import CliRunner

from tirl.cli.main import app
from tirl.config import load_config
from tirl.train.run_log import RunLog
from tirl.train.tracking import IDS_FILE, TABLE_COLUMNS, Tracker, TrackingError, make_trackers

pytestmark = pytest.mark.timeout(300)
wandb = pytest.importorskip("wandb", reason="the wandb extra is not installed (make setup installs it)")
mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (make setup installs it)")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports from a test
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield scripted_run(root, name="tracked", extra=["log.backends=[tensorboard,wandb,mlflow]", "log.table_rows=5"])


def _metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _scalars(row: dict) -> dict[str, float]:
    return {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def wandb_records(path):
    """The records of a W&B transaction log (``run-<id>.wandb``): a 7-byte header (``:W&B``, magic
    0xBEE1, version) and then LevelDB's log format, 32 KiB blocks of chunks with a 7-byte header
    (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last), each record a protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1
    i, buf = 7, b""
    while i + 7 <= len(data):
        left = 32768 - i % 32768
        if left < 7:  # block trailer padding
            i += left
            continue
        _, n, kind = struct.unpack("<IHB", data[i : i + 7])
        i += 7
        if kind == 0 and n == 0:
            break
        buf += data[i : i + n]
        i += n
        if kind in (1, 4):
            r = pb.Record()
            r.ParseFromString(buf)
            buf = b""
            yield r


def test_wandb_reads_back_the_metrics(run):
    (log,) = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    history: dict[int, dict[str, float]] = {}
    config = {}
    for r in wandb_records(log):
        kind = r.WhichOneof("record_type")
        if kind == "history":
            items = history.setdefault(r.history.step.num, {})
            for it in r.history.item:
                key = it.key or "/".join(it.nested_key)
                items[key] = json.loads(it.value_json)
        elif kind in ("config", "run"):  # the config comes with the run record, later changes as config records
            items = r.config.update if kind == "config" else r.run.config.update
            config.update({it.key: json.loads(it.value_json) for it in items})
    rows = _metrics(run)
    assert sorted(history) == [r["step"] for r in rows] == [0, 1, 2]
    for row in rows:
        logged = history[row["step"]]
        for k, v in _scalars(row).items():
            assert logged[k] == pytest.approx(v, rel=1e-9, abs=1e-12), (row["step"], k)
    assert config["strategy"]["name"] == "elpo" and config["run"]["name"] == "tracked"
    # the tables: trajectories per step (at most log.table_rows), the evaluations
    # (W&B flattens a logged table into <key>/_type, <key>/path, ...)
    assert history[1]["trajectories/_type"] == "table-file" and history[1]["trajectories/nrows"] == 5
    assert history[0]["eval_table/before/_type"] == "table-file" and "eval_table/after/path" in history[2]
    files = run / "wandb" / log.parent.name / "files"
    table = json.loads((files / history[2]["trajectories/path"]).read_text())
    assert table["columns"] == TABLE_COLUMNS and {r[0] for r in table["data"]} == {2}


def test_mlflow_reads_back_the_metrics(run):
    from mlflow.tracking import MlflowClient

    from tirl.train.tracking.mlflow_backend import mlflow_key

    client = MlflowClient((run.parent / "mlruns").as_uri())
    run_id = json.loads((run / IDS_FILE).read_text())["mlflow"]
    info = client.get_run(run_id)
    assert info.info.status == "FINISHED" and info.info.run_name == "tracked"
    assert info.data.params["strategy.name"] == "elpo" and info.data.params["log.table_rows"] == "5"
    rows = _metrics(run)
    keys = {k for row in rows for k in _scalars(row)}
    assert "eval/pass@1" in keys  # logged as eval/pass_at_1
    for k in keys:
        logged = {m.step: m.value for m in client.get_metric_history(run_id, mlflow_key(k))}
        want = {row["step"]: v for row in rows for kk, v in _scalars(row).items() if kk == k}
        assert logged == pytest.approx(want, rel=1e-9, abs=1e-12), k
    art = {a.path for a in client.list_artifacts(run_id)} | {a.path for d in ("eval", "trajectories") for a in client.list_artifacts(run_id, d)}
    assert {"config.json", "eval/before.json", "eval/after.json", "trajectories/step_0001.json", "trajectories/step_0002.json"} <= art
    table = json.loads((run.parent / "mlruns" / info.info.experiment_id / run_id / "artifacts" / "trajectories" / "step_0001.json").read_text())
    assert table["columns"] == TABLE_COLUMNS and len(table["data"]) == 5
    assert mlflow_key("eval/maj@16") == "eval/maj_at_16"


def test_a_resumed_run_continues_its_tracked_runs(run, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = json.loads((run / IDS_FILE).read_text())
    cfg = load_config(str(run / "config.yaml"))
    trackers = make_trackers(cfg, run, resume=True)
    try:
        assert {t.name: t.run_id for t in trackers if t.run_id} == before
    finally:
        for t in trackers:
            t.close()


def test_a_missing_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    cfg = load_config("grpo", [f"run.out_dir={tmp_path}", "log.backends=[wandb]"])
    with pytest.raises(TrackingError, match=r"pip install 'tirl\[wandb\]'"):
        make_trackers(cfg, tmp_path / "run")
    r = CliRunner().invoke(app, ["train", "grpo", "model.name=tiny-random", f"run.out_dir={tmp_path}", "log.backends=[wandb]", "--no-eval"])
    assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1].startswith("error: log.backends includes wandb"), r.output


class Broken(Tracker):
    name = "broken"

    def __init__(self):
        self.closed = None

    def scalars(self, step, values):
        raise ConnectionError("server went away")

    def close(self, ok=True):
        self.closed = ok


def test_a_backend_failing_mid_run_is_dropped_not_fatal(tmp_path):
    said = []
    broken = Broken()
    log = RunLog(tmp_path, [broken])
    log.on_warning = said.append
    log.log(1, {"reward/mean": 0.5})
    log.log(2, {"reward/mean": 0.7})
    assert [r["reward/mean"] for r in log.read()] == [0.5, 0.7]  # metrics.jsonl has every step
    assert len(said) == 1 and "broken tracker failed" in said[0] and "server went away" in said[0]
    assert log.trackers == []
