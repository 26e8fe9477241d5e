"""JSONL and Parquet task loaders: field mapping, default ids, answer types, bad rows."""

from __future__ import annotations

import json
import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tirl.tasks.files import TaskLoadError, load_file, load_jsonl, load_parquet


def _jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_jsonl_defaults_and_answer_types(tmp_path):
    p = _jsonl(
        tmp_path / "probs.jsonl",
        [
            {"id": "a", "prompt": "1+1?", "answer": "2"},
            {"prompt": "2+2?", "answer": 4},
            {"id": 7, "prompt": "half?", "answer": 0.5},
            {"prompt": "three?", "answer": 3.0},
            "",  # blank line: not a row
            {"prompt": [{"role": "user", "content": "Who?"}], "answer": ["Ada Lovelace", "Lovelace"]},
        ],
    )
    tasks = load_jsonl(p)
    assert [t.id for t in tasks] == ["a", "probs-1", "7", "probs-3", "probs-4"]
    assert [t.answer for t in tasks] == ["2", "4", "0.5", "3", ["Ada Lovelace", "Lovelace"]]
    assert tasks[4].prompt == [{"role": "user", "content": "Who?"}]
    assert tasks[0].meta == {"source": "file:probs.jsonl", "verifier": "math"}


def test_jsonl_field_mapping(tmp_path):
    p = _jsonl(
        tmp_path / "qa.jsonl",
        [{"qid": "q1", "question": "Capital of France?", "golds": ["Paris"], "level": 2, "extra": "x"}],
    )
    (t,) = load_jsonl(p, id_field="qid", prompt_field="question", answer_field="golds", meta_fields=["level"], verifier="qa")
    assert (t.id, t.prompt, t.answer) == ("q1", "Capital of France?", ["Paris"])
    assert t.meta == {"source": "file:qa.jsonl", "verifier": "qa", "level": 2} and t.verifier == "qa"


@pytest.mark.parametrize(
    "row,field,message",
    [
        ({"prompt": "p"}, "answer", "missing field 'answer'"),
        ({"answer": "1"}, "prompt", "missing field 'prompt'"),
        ({"prompt": "p", "answer": None}, "answer", "is null"),
        ({"prompt": "p", "answer": True}, "answer", "boolean"),
        ({"prompt": "p", "answer": {"x": 1}}, "answer", "got dict"),
        ({"prompt": "p", "answer": [1, 2]}, "answer", "list of strings"),
        ({"prompt": "p", "answer": []}, "answer", "list of strings"),
        ({"prompt": 5, "answer": "1"}, "prompt", "got int"),
        ({"prompt": "  ", "answer": "1"}, "prompt", "is empty"),
        ({"prompt": [{"role": "user"}], "answer": "1"}, "prompt", "message 0"),
        ({"id": 1.5, "prompt": "p", "answer": "1"}, "id", "'id'"),
        ([1, 2], None, "expected an object"),
    ],
)
def test_jsonl_bad_row_names_file_line_and_field(tmp_path, row, field, message):
    p = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "ok", "answer": "1"}, row])
    with pytest.raises(TaskLoadError) as e:
        load_jsonl(p)
    text = str(e.value)
    assert "bad.jsonl" in text and "line 2" in text and message in text
    if field:
        assert repr(field) in text


def test_jsonl_invalid_json_and_duplicates(tmp_path):
    p = _jsonl(tmp_path / "broken.jsonl", [{"prompt": "ok", "answer": "1"}, "{not json"])
    with pytest.raises(TaskLoadError, match=r"broken.jsonl, line 2: invalid JSON"):
        load_jsonl(p)
    p = _jsonl(tmp_path / "dup.jsonl", [{"id": "x", "prompt": "a", "answer": "1"}, {"id": "x", "prompt": "b", "answer": "2"}])
    with pytest.raises(TaskLoadError, match=r"line 2: id 'x' repeats the id at line 1"):
        load_jsonl(p)


def test_jsonl_skip_bad_counts_and_warns(tmp_path):
    p = _jsonl(
        tmp_path / "mixed.jsonl",
        [{"prompt": "a", "answer": "1"}, {"prompt": "b"}, "{oops", {"prompt": "c", "answer": 3}],
    )
    with pytest.warns(UserWarning, match=r"skipped 2 bad rows of .*mixed.jsonl \(kept 2\)"):
        tasks = load_jsonl(p, skip_bad=True)
    assert [t.answer for t in tasks] == ["1", "3"]
    assert [t.id for t in tasks] == ["mixed-0", "mixed-3"]  # ids keep the row position
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file warns about nothing
        load_jsonl(_jsonl(tmp_path / "clean.jsonl", [{"prompt": "a", "answer": "1"}]), skip_bad=True)


def test_parquet_roundtrip_and_mapping(tmp_path):
    p = tmp_path / "set.parquet"
    pq.write_table(
        pa.table(
            {
                "problem": ["1+1?", "2+2?", "3+3?"],
                "solution": ["2", "4", "6"],
                "uid": ["u0", None, "u2"],
                "topic": ["add", "add", "add"],
            }
        ),
        p,
    )
    tasks = load_parquet(p, id_field="uid", prompt_field="problem", answer_field="solution", meta_fields=("topic",))
    assert [t.id for t in tasks] == ["u0", "set-1", "u2"]
    assert [t.answer for t in tasks] == ["2", "4", "6"] and tasks[0].meta["topic"] == "add"
    assert load_file(p, id_field="uid", prompt_field="problem", answer_field="solution")[2].prompt == "3+3?"


def test_parquet_numeric_and_list_answers(tmp_path):
    p = tmp_path / "nums.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b"], "answer": [12345, 7]}), p)
    assert [t.answer for t in load_parquet(p)] == ["12345", "7"]
    p2 = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"prompt": ["a"], "answer": [["x", "y"]]}), p2)
    assert load_parquet(p2)[0].answer == ["x", "y"]


def test_parquet_bad_rows(tmp_path):
    p = tmp_path / "holes.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b", None], "answer": ["1", None, "3"]}), p)
    with pytest.raises(TaskLoadError, match=r"holes.parquet, row 1: field 'answer' is null"):
        load_parquet(p)
    with pytest.warns(UserWarning, match="skipped 2 bad rows"):
        assert [t.id for t in load_parquet(p, skip_bad=True)] == ["holes-0"]
    with pytest.raises(TaskLoadError, match=r"missing column\(s\) 'question'"):
        load_parquet(p, prompt_field="question", skip_bad=True)  # a missing column is never skipped


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_jsonl(tmp_path / "nope.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(TaskLoadError, match="unsupported"):
        load_file(tmp_path / "x.csv")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(TaskLoadError, match="cannot read as Parquet"):
        load_parquet(tmp_path / "junk.parquet")


def test_encoding_and_empty_files(tmp_path):
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "a", "prompt": "p", "answer": "2"}).encode() + b"\n")
    assert [t.id for t in load_jsonl(bom)] == ["a"]  # a byte-order mark is not data
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(b'{"id": "a", "prompt": "p", "answer": "2"}\n{"id": "b", "prompt": "caf\xe9", "answer": "2"}\n')
    with pytest.raises(TaskLoadError, match=r"line 2: not UTF-8 \(byte 0xe9 at column 27\)"):
        load_jsonl(latin)
    assert [t.id for t in load_jsonl(latin, skip_bad=True)] == ["a"]
    (tmp_path / "empty.jsonl").write_text("\n \n")
    with pytest.raises(TaskLoadError, match="no tasks"):
        load_jsonl(tmp_path / "empty.jsonl")
    bad = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "p"}])
    with pytest.raises(TaskLoadError, match=r"no tasks \(all 1 rows are bad"):
        load_jsonl(bad, skip_bad=True)
    (tmp_path / "huge.jsonl").write_text('{"prompt": "p", "answer": ' + "9" * 5000 + "}\n")
    with pytest.raises(TaskLoadError, match="line 1: unreadable JSON"):
        load_jsonl(tmp_path / "huge.jsonl")
    with pytest.raises(TaskLoadError, match="is a directory"):
        load_jsonl(tmp_path)
