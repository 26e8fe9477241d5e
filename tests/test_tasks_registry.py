"""load_tasks: one entry point for generators, packaged sets and files."""

from __future__ import annotations

import json

import pytest

from tirl.tasks import load_tasks
from tirl.tasks.files import TaskLoadError


def test_arith_via_registry():
    tasks = load_tasks("arith", n=12, seed=3, difficulty=[2, 4])
    assert len(tasks) == 12 and {t.meta["difficulty"] for t in tasks} == {2, 4}
    test = load_tasks("arith", n=12, seed=3, split="test", difficulty=[2, 4])
    assert not {t.prompt for t in tasks} & {t.prompt for t in test}
    with pytest.raises(ValueError, match="pass n"):
        load_tasks("arith", n=None, seed=0)
    with pytest.raises(TaskLoadError, match="unknown option"):
        load_tasks("arith", n=2, seed=0, level=3)


def test_champ_via_registry():
    assert len(load_tasks("champ", n=None, seed=0, split="all")) == 270
    a = load_tasks("champ", n=10, seed=1, split="train")
    assert len(a) == 10 and [t.id for t in a] == [t.id for t in load_tasks("champ", n=10, seed=1, split="train")]
    assert [t.id for t in a] != [t.id for t in load_tasks("champ", n=10, seed=2, split="train")]


def test_file_via_registry(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text("\n".join(json.dumps({"q": f"{i}+1?", "a": i + 1}) for i in range(5)))
    tasks = load_tasks(str(p), n=None, seed=0, prompt_field="q", answer_field="a")
    assert [t.answer for t in tasks] == ["1", "2", "3", "4", "5"]
    assert len(load_tasks(str(p), n=2, seed=0, prompt_field="q", answer_field="a")) == 2


def test_unknown_source_lists_choices():
    with pytest.raises(ValueError, match=r"unknown task source 'gsm8k'; choose one of arith, champ, (\w+, )*or a path") as e:
        load_tasks("gsm8k", n=1, seed=0)
    assert " hf," in str(e.value) and " lookup," in str(e.value)
