"""Hugging Face datasets as task sources, offline: small datasets in the layouts of GSM8K, MATH and
HotpotQA, written by the test in every local form (JSON Lines, Parquet, an Arrow file, a
``save_to_disk`` Dataset and DatasetDict, a directory of split files), load through each
preset; every gold passes its verifier's self-test; bad data fails with one line."""

from __future__ import annotations

import glob
import json
import shutil

import pytest

from tirl.config import ConfigError, load_config
from tirl.rewards.outcome import gold_self_test
from tirl.tasks import TaskLoadError, load_tasks
from tirl.train import components as C

datasets = pytest.importorskip("datasets")

GSM8K = [
    {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "A farm sells 1,200 eggs a day. How many in 3 days?", "answer": "1200 * 3 = 3600\n#### 3,600"},
    {"question": "Half of 9 is?", "answer": "9 / 2 = 4.5\n#### 4.5"},
]
MATH = [
    {"problem": "Compute $\\frac{1}{2}+\\frac{1}{3}$.", "solution": "We get $\\boxed{\\frac{5}{6}}$.", "level": "Level 1", "type": "Prealgebra"},
    {"problem": "What is $2^{10}$?", "solution": "First $2^5=32$, so $\\boxed{1024}$.", "level": "Level 2", "type": "Algebra"},
    {"problem": "Solve $x^2=9$, $x>0$.", "solution": "$x=\\boxed{3}$", "level": "Level 1", "type": "Algebra"},
]
HOTPOT = [
    {
        "id": "5a8b57f25542995d1e6f1371",
        "question": "Which city is the capital of the country where Veltrax was founded?",
        "answer": "Lima",
        "type": "bridge",
        "level": "hard",
        "context": {"title": ["a"], "sentences": [["long"]]},
    },
    {
        "id": "5a8c7595554299585d9e36b6",
        "question": "Were both founders born in 1950?",
        "answer": "no",
        "type": "comparison",
        "level": "medium",
        "context": {"title": ["b"], "sentences": [["text"]]},
    },
]
EXPECT = {
    "gsm8k": (GSM8K, ["7", "3600", "4.5"], "math"),
    "math": (MATH, ["\\frac{5}{6}", "1024", "3"], "math"),
    "hotpotqa": (HOTPOT, ["Lima", "no"], "qa"),
}
FORMATS = ["jsonl", "json", "parquet", "arrow", "saved_dataset", "saved_dict", "split_files"]


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No network (a hub lookup fails at once) and a private datasets cache."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


def write(rows: list[dict], fmt: str, d) -> str:
    """``rows`` as a local dataset of format ``fmt`` under ``d``; with splits, ``test`` holds the
    last row and ``train`` the rest."""
    ds = datasets.Dataset.from_list(rows)
    train, test = ds.select(range(len(rows) - 1)), ds.select([len(rows) - 1])
    d.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(d / "data.jsonl")
    if fmt == "json":
        ds.to_json(d / "data.json", lines=False)
        return str(d / "data.json")
    if fmt == "parquet":
        ds.to_parquet(d / "data.parquet")
        return str(d / "data.parquet")
    if fmt == "arrow":
        ds.save_to_disk(d / "tmp")
        shutil.copy(glob.glob(str(d / "tmp" / "*.arrow"))[0], d / "data.arrow")
        return str(d / "data.arrow")
    if fmt == "saved_dataset":
        ds.save_to_disk(d / "saved")
        return str(d / "saved")
    if fmt == "saved_dict":
        datasets.DatasetDict({"train": train, "test": test}).save_to_disk(d / "saved_dict")
        return str(d / "saved_dict")
    if fmt == "split_files":
        (d / "splits").mkdir()
        train.to_json(d / "splits" / "train.jsonl")
        test.to_json(d / "splits" / "test.jsonl")
        return str(d / "splits")
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("preset", sorted(EXPECT))
def test_every_format_loads_with_each_preset(tmp_path, preset, fmt):
    rows, golds, verifier = EXPECT[preset]
    path = write(rows, fmt, tmp_path)
    split_source = fmt in ("saved_dict", "split_files")
    train = load_tasks("hf", split="train", path=path, preset=preset)
    assert [t.answer for t in train] == (golds[:-1] if split_source else golds)
    assert [t.prompt for t in train] == [r["question" if preset != "math" else "problem"] for r in (rows[:-1] if split_source else rows)]
    assert all(t.meta["verifier"] == verifier and t.meta["source"] == f"hf:{path}" for t in train)
    assert gold_self_test(train) == [], "every gold must score correct with its verifier"
    test = load_tasks("hf", split="test", path=path, preset=preset)
    assert [t.answer for t in test] == ([golds[-1]] if split_source else golds)
    assert len({t.id for t in train + test}) == len(train) + len(test) or not split_source
    if preset == "math":
        assert train[0].meta["level"] == "Level 1" and train[0].meta["type"] == "Prealgebra"
    if preset == "hotpotqa":
        assert train[0].id == HOTPOT[0]["id"] and train[0].meta["type"] == "bridge" and "context" not in train[0].meta


def test_ids_subsets_and_field_mapping(tmp_path):
    path = write(GSM8K, "saved_dict", tmp_path)
    tasks = load_tasks("hf", split="train", path=path, preset="gsm8k")
    assert [t.id for t in tasks] == ["saved_dict-train-0", "saved_dict-train-1"]
    # n picks a seeded subset in source order, as for the other loaded sources
    five = [{"q": f"q{i}", "a": str(i), "k": i} for i in range(5)]
    p = write(five, "parquet", tmp_path / "mapped")
    a = load_tasks("hf", n=3, seed=1, path=p, prompt_field="q", answer_field="a", meta_fields=["k"], verifier="exact")
    assert len(a) == 3 and [t.id for t in a] == sorted((t.id for t in a), key=lambda i: int(i.split("-")[-1]))
    assert a == load_tasks("hf", n=3, seed=1, path=p, prompt_field="q", answer_field="a", meta_fields=["k"], verifier="exact")
    assert all(t.meta["verifier"] == "exact" and t.meta["k"] == int(t.answer) for t in a)
    # an answer column chosen by hand is read as it is, without the preset's extraction
    rows = [{**r, "final": r["answer"].rsplit("#### ", 1)[1]} for r in GSM8K]
    t = load_tasks("hf", path=write(rows, "jsonl", tmp_path / "final"), preset="gsm8k", answer_field="final")
    assert [x.answer for x in t] == ["7", "3,600", "4.5"]


def test_config_fields_reach_the_loader(tmp_path):
    path = write(MATH, "saved_dict", tmp_path)
    cfg = load_config(None, ["task.name=hf", f"task.path={path}", "task.preset=math", "task.eval_split=test"])
    assert [t.answer for t in C.tasks(cfg, "train", 10)] == ["\\frac{5}{6}", "1024"]
    assert [t.answer for t in C.tasks(cfg, cfg.task.eval_split, 10)] == ["3"]
    cfg = load_config(None, ["task.name=hf", f"task.path={path}", "task.preset=math", "task.split=test"])
    assert [t.answer for t in C.tasks(cfg, "train", 10)] == ["3"]  # training tasks come from task.split
    # field mapping reaches JSONL task files too
    f = tmp_path / "tasks.jsonl"
    f.write_text(json.dumps({"qid": "x1", "q": "What is 1+1?", "a": "2"}) + "\n")
    cfg = load_config(None, [f"task.name={f}", "task.id_field=qid", "task.prompt_field=q", "task.answer_field=a"])
    (task,) = C.tasks(cfg, "train", 5)
    assert (task.id, task.prompt, task.answer) == ("x1", "What is 1+1?", "2")


@pytest.mark.parametrize(
    "overrides, expect",
    [
        (["task.name=hf"], "task.name=hf needs task.path"),
        (["task.path=x"], "task.path is read only with task.name=hf"),
        (["task.name=champ", "task.prompt_field=q"], "task.prompt_field maps the fields"),
        (["task.name=hf", "task.path=x", "task.preset=gsm9k"], "task.preset"),
    ],
)
def test_config_errors(overrides, expect):
    with pytest.raises(ConfigError, match=expect):
        load_config(None, overrides)


def test_bad_data_is_one_line(tmp_path):
    def err(**kw) -> str:
        with pytest.raises(TaskLoadError) as e:
            load_tasks("hf", **{"split": "train", **kw})
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "no such file or directory" in err(path=str(tmp_path / "missing"))
    assert "no such file or directory" in err(path="./no/such/data.parquet")
    assert "no split 'validation' (splits: train, test)" in err(path=write(GSM8K, "saved_dict", tmp_path / "a"), split="validation")
    msg = err(path=write(GSM8K, "parquet", tmp_path / "b"), preset="math")
    assert "missing column(s) 'problem', 'solution' (preset math)" in msg and "columns: question, answer" in msg
    no_marker = [GSM8K[0], {"question": "q", "answer": "no marker here"}]
    assert "row 1: field 'answer' has no final '#### answer' line (preset gsm8k)" in err(
        path=write(no_marker, "jsonl", tmp_path / "c"), preset="gsm8k"
    )
    no_box = [{"problem": "p", "solution": "unboxed"}]
    assert "row 0: field 'solution' has no \\boxed{} answer" in err(path=write(no_box, "jsonl", tmp_path / "d"), preset="math")
    (tmp_path / "e.txt").write_text("x")
    assert "unsupported data file type '.txt'" in err(path=str(tmp_path / "e.txt"))
    dup = [{"id": "same", "question": "a", "answer": "1"}, {"id": "same", "question": "b", "answer": "2"}]
    assert "repeats the id" in err(path=write(dup, "jsonl", tmp_path / "f"), preset="hotpotqa")
    # a hub id while offline fails at once with a line that says what to do
    assert "give a local path" in err(path="nobody-xyz/no-such-dataset")
    # skip_bad keeps the good rows
    with pytest.warns(UserWarning, match="skipped 1 bad rows"):
        assert len(load_tasks("hf", path=write(no_marker, "jsonl", tmp_path / "g"), preset="gsm8k", skip_bad=True)) == 1
