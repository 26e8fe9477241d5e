"""Load tasks from JSONL and Parquet files, with configurable field names.

Each row becomes a ``Task``: ``prompt_field`` gives the prompt (text, or a list of chat messages
``{"role": ..., "content": ...}``), ``answer_field`` the gold answer -- a string, a number
(converted to a string: ``42``, ``2.5``; an integral float becomes ``"3"``) or a non-empty list
of strings (acceptable answers, e.g. for QA) -- and ``id_field`` the id (a string or integer;
``{file stem}-{row}`` when the field is absent or null, ``row`` counting data rows from 0).
``meta_fields`` are copied into ``Task.meta`` beside ``source`` (``file:{name}``) and
``verifier``.

Nothing is lost silently: a row with a missing field, a wrong type or a repeated id raises
``TaskLoadError`` naming the file, the line (JSONL, 1-based) or row (Parquet, 0-based) and the
field. With ``skip_bad=True`` such rows are skipped instead, and one warning says how many and
why (the first few errors).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tirl.errors import UserError
from tirl.types import Task

_MAX_REPORTED = 5


class TaskLoadError(UserError, ValueError):
    """A task file or one of its rows cannot be turned into a Task."""


class TaskFileNotFound(TaskLoadError, FileNotFoundError):
    """The task file does not exist."""


@dataclass(frozen=True)
class FieldMap:
    """Which record fields hold what."""

    id_field: str = "id"
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    meta_fields: tuple[str, ...] = ()
    verifier: str = "math"


def _where(path: Path | str, pos: str) -> str:
    return f"{path}, {pos}"


def _prompt(value: Any, where: str, field: str) -> str | list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise TaskLoadError(f"{where}: field {field!r} is empty")
        return value
    if isinstance(value, list) and value:
        messages = []
        for k, m in enumerate(value):
            if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                raise TaskLoadError(f"{where}: field {field!r} message {k} must be an object with string 'role' and 'content'")
            messages.append({"role": m["role"], "content": m["content"]})
        return messages
    raise TaskLoadError(f"{where}: field {field!r} must be a non-empty string or list of messages, got {type(value).__name__}")


def _answer(value: Any, where: str, field: str) -> str | list[str]:
    if isinstance(value, bool):  # bool is an int subclass; True as an answer is almost surely a mistake
        raise TaskLoadError(f"{where}: field {field!r} is a boolean; write it as a string if that is intended")
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TaskLoadError(f"{where}: field {field!r} is {value!r}")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list):
        raise TaskLoadError(f"{where}: field {field!r} must be a non-empty list of strings")
    raise TaskLoadError(f"{where}: field {field!r} must be a string, a number or a list of strings, got {type(value).__name__}")


def _task(record: Any, fields: FieldMap, source: str, default_id: str, where: str) -> Task:
    if not isinstance(record, dict):
        raise TaskLoadError(f"{where}: expected an object, got {type(record).__name__}")
    for name in (fields.prompt_field, fields.answer_field, *fields.meta_fields):
        if name not in record:
            raise TaskLoadError(f"{where}: missing field {name!r} (fields present: {', '.join(sorted(record))})")
    if record[fields.answer_field] is None:
        raise TaskLoadError(f"{where}: field {fields.answer_field!r} is null")
    raw_id = record.get(fields.id_field)
    if raw_id is None:
        task_id = default_id
    elif isinstance(raw_id, str) and raw_id:
        task_id = raw_id
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        task_id = str(raw_id)
    else:
        raise TaskLoadError(f"{where}: field {fields.id_field!r} must be a non-empty string or an integer, got {raw_id!r}")
    meta: dict[str, Any] = {"source": source, "verifier": fields.verifier}
    meta.update({name: record[name] for name in fields.meta_fields})
    return Task(
        id=task_id,
        prompt=_prompt(record[fields.prompt_field], where, fields.prompt_field),
        answer=_answer(record[fields.answer_field], where, fields.answer_field),
        meta=meta,
    )


def _collect(
    rows: Iterator[tuple[str, Any]], path: Path | str, fields: FieldMap, skip_bad: bool, source: str | None = None, stem: str | None = None
) -> list[Task]:
    """Turn (position, record-or-error) pairs into tasks, checking ids are unique. ``path``
    names the source in errors; ``source`` (``Task.meta["source"]``) and ``stem`` (of default
    ids) default to the file's name and stem (the Hugging Face loader gives its own)."""
    source = source or f"file:{Path(path).name}"
    stem = stem or Path(path).stem
    tasks: list[Task] = []
    first_seen: dict[str, str] = {}
    errors: list[str] = []
    for row_number, (pos, record) in enumerate(rows):
        where = _where(path, pos)
        try:
            if isinstance(record, TaskLoadError):
                raise record
            task = _task(record, fields, source, f"{stem}-{row_number}", where)
            if task.id in first_seen:
                raise TaskLoadError(f"{where}: id {task.id!r} repeats the id at {first_seen[task.id]}")
        except TaskLoadError as e:
            if not skip_bad:
                raise
            errors.append(str(e))
            continue
        first_seen[task.id] = pos
        tasks.append(task)
    shown = "; ".join(errors[:_MAX_REPORTED]) + ("; ..." if len(errors) > _MAX_REPORTED else "")
    if not tasks:  # an empty task list would "evaluate" to accuracy 0 on nothing
        raise TaskLoadError(f"{path}: no tasks" + (f" (all {len(errors)} rows are bad: {shown})" if errors else " (it has no rows)"))
    if errors:
        warnings.warn(f"skipped {len(errors)} bad rows of {path} (kept {len(tasks)}): {shown}", stacklevel=3)
    return tasks


def _check_file(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        raise TaskLoadError(f"task file {p} is a directory; give a .jsonl or .parquet file")
    if not p.is_file():
        raise TaskFileNotFound(f"task file not found: {p}")
    return p


def _fieldmap(id_field: str, prompt_field: str, answer_field: str, meta_fields, verifier: str) -> FieldMap:
    if isinstance(meta_fields, str):
        meta_fields = (meta_fields,)
    return FieldMap(id_field, prompt_field, answer_field, tuple(meta_fields or ()), verifier)


def load_jsonl(
    path: str | Path,
    *,
    id_field: str = "id",
    prompt_field: str = "prompt",
    answer_field: str = "answer",
    meta_fields: tuple[str, ...] | list[str] = (),
    verifier: str = "math",
    skip_bad: bool = False,
) -> list[Task]:
    """Tasks from a JSON Lines file (one object per line; blank lines are ignored)."""
    p = _check_file(path)
    fields = _fieldmap(id_field, prompt_field, answer_field, meta_fields, verifier)

    def rows() -> Iterator[tuple[str, Any]]:
        with p.open("rb") as f:
            for line_no, raw in enumerate(f, start=1):
                pos = f"line {line_no}"
                try:
                    # utf-8-sig: a byte-order mark (some editors write one) is not part of the data
                    line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    yield (
                        pos,
                        TaskLoadError(f"{_where(p, pos)}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); save the file as UTF-8"),
                    )
                    continue
                if not line.strip():
                    continue
                try:
                    yield pos, json.loads(line)
                except json.JSONDecodeError as e:
                    yield pos, TaskLoadError(f"{_where(p, pos)}: invalid JSON ({e.msg})")
                except (ValueError, RecursionError) as e:  # an integer of > 4300 digits; nesting deeper than Python's stack
                    what = "nested too deeply" if isinstance(e, RecursionError) else " ".join(str(e).split())[:120]
                    yield pos, TaskLoadError(f"{_where(p, pos)}: unreadable JSON ({what})")

    return _collect(rows(), p, fields, skip_bad)


def load_parquet(
    path: str | Path,
    *,
    id_field: str = "id",
    prompt_field: str = "prompt",
    answer_field: str = "answer",
    meta_fields: tuple[str, ...] | list[str] = (),
    verifier: str = "math",
    skip_bad: bool = False,
) -> list[Task]:
    """Tasks from a Parquet file. A required column missing from the file is always an error."""
    import pyarrow.parquet as pq  # imported here: only Parquet users pay for it

    p = _check_file(path)
    fields = _fieldmap(id_field, prompt_field, answer_field, meta_fields, verifier)
    try:
        table = pq.read_table(p)
    except Exception as e:  # pyarrow raises several types for unreadable files
        raise TaskLoadError(f"{p}: cannot read as Parquet ({e})") from e
    columns = set(table.column_names)
    missing = [c for c in (fields.prompt_field, fields.answer_field, *fields.meta_fields) if c not in columns]
    if missing:
        raise TaskLoadError(f"{p}: missing column(s) {', '.join(map(repr, missing))} (columns: {', '.join(sorted(columns))})")
    records = table.to_pylist()
    return _collect(((f"row {i}", r) for i, r in enumerate(records)), p, fields, skip_bad)


LOADERS = {".jsonl": load_jsonl, ".parquet": load_parquet}


def load_file(path: str | Path, **options: Any) -> list[Task]:
    """Dispatch on the file suffix (``.jsonl``, ``.parquet``)."""
    suffix = Path(path).suffix.lower()
    if suffix not in LOADERS:
        raise TaskLoadError(f"{path}: unsupported task file type {suffix!r}; supported: {', '.join(LOADERS)}")
    return LOADERS[suffix](path, **options)
