"""Hugging Face datasets as task sources (``task.name=hf``, ``task.path``, ``task.split``).

``path`` is read as, in this order:

1. an existing local path: a directory written by ``Dataset.save_to_disk`` /
   ``DatasetDict.save_to_disk`` (read with ``datasets.load_from_disk``); a directory of data
   files (``datasets.load_dataset(dir)``: ``train.jsonl`` / ``test.parquet`` ... become splits);
   or one data file (``.json``/``.jsonl``, ``.parquet``, ``.arrow``, ``.csv``: ``load_dataset``
   with that format's builder);
2. a path that names the local filesystem (it starts with ``/``, ``./``, ``../`` or ``~``, or
   ends in a data-file suffix) but does not exist: an error, the hub is not asked;
3. otherwise a dataset id on the Hugging Face hub (``openai/gsm8k``, with ``subset`` as its
   configuration), through ``load_dataset``, which also serves it from the local cache (set
   ``HF_HUB_OFFLINE=1`` / ``HF_DATASETS_OFFLINE=1`` to use only the cache).

A source with splits (a hub dataset, a ``DatasetDict``, a directory of split files) gives the
split asked for; one file or one saved ``Dataset`` is a single split, used whatever split is
asked (as for tirl's task files). Rows become ``Task``\\s through the same field mapping and
checks as the task files (``tirl.tasks.files``): a missing column, a row without a usable
answer or a repeated id is a ``TaskLoadError`` naming the dataset, split and row. A preset
(``tirl.tasks.hf_presets``) supplies the fields, the verifier and the answer extraction.

``datasets`` is imported on first use, so the config and the command line stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tirl.tasks.files import FieldMap, TaskFileNotFound, TaskLoadError, _collect
from tirl.tasks.hf_presets import PRESETS, HFPreset
from tirl.types import Task

# data-file suffix -> the datasets builder that reads it
BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}
_LOCAL_PREFIXES = ("/", "./", "../", "~")


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return (text[:300] + "...") if len(text) > 300 else (text or type(e).__name__)


def _pick_split(obj: Any, split: str, where: str) -> Any:
    """One split of a DatasetDict (a Dataset is one split already)."""
    from datasets import DatasetDict

    if not isinstance(obj, DatasetDict):
        return obj
    if split not in obj:
        raise TaskLoadError(f"{where}: no split {split!r} (splits: {', '.join(obj)}); set task.split / task.eval_split")
    return obj[split]


def _is_saved(p: Path) -> bool:
    return (p / "dataset_dict.json").is_file() or (p / "state.json").is_file()


def open_split(path: str, split: str, subset: str | None = None, cache_dir: str | None = None) -> tuple[Any, bool]:
    """The ``datasets.Dataset`` of one split (see the module docstring for how ``path`` is read),
    and whether the source has splits (False: one file or one saved Dataset, whatever ``split``)."""
    import datasets

    where = f"{path} [{split}]"
    p = Path(path).expanduser()
    try:
        if p.is_dir() and _is_saved(p):
            obj = datasets.load_from_disk(str(p))
            return _pick_split(obj, split, where), isinstance(obj, datasets.DatasetDict)
        if p.is_file():
            builder = BUILDERS.get(p.suffix.lower())
            if builder is None:
                raise TaskLoadError(f"{path}: unsupported data file type {p.suffix!r}; supported: {', '.join(BUILDERS)}")
            return datasets.load_dataset(builder, data_files=str(p), split="train", cache_dir=cache_dir), False
        if p.is_dir():
            return _pick_split(datasets.load_dataset(str(p), name=subset, cache_dir=cache_dir), split, where), True
        if path.startswith(_LOCAL_PREFIXES) or p.suffix.lower() in BUILDERS:
            raise TaskFileNotFound(f"task.path {path}: no such file or directory")
        return _pick_split(datasets.load_dataset(path, name=subset, cache_dir=cache_dir), split, where), True
    except TaskLoadError:
        raise
    except ConnectionError as e:  # datasets raises it (after its retries) when the hub cannot serve the id
        raise TaskLoadError(
            f"task.path {path!r}: not a local path, and the Hugging Face hub cannot serve it here ({_first_line(e)}); "
            "give a local path (a save_to_disk directory or a data file) or the id of a cached dataset"
        ) from None
    except FileNotFoundError as e:  # datasets' DatasetNotFoundError is one
        raise TaskLoadError(f"task.path {path!r}: no such dataset on disk or on the hub ({_first_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - datasets raises many types for unreadable data; each is the user's to fix
        raise TaskLoadError(f"task.path {path!r}: cannot load it with datasets ({type(e).__name__}: {_first_line(e)})") from None


def _fields(preset: HFPreset | None, given: dict[str, Any]) -> FieldMap:
    base = FieldMap() if preset is None else FieldMap(preset.id_field, preset.prompt_field, preset.answer_field, (), preset.verifier)
    meta = given.get("meta_fields")
    return FieldMap(
        given.get("id_field") or base.id_field,
        given.get("prompt_field") or base.prompt_field,
        given.get("answer_field") or base.answer_field,
        tuple([meta] if isinstance(meta, str) else meta or ()),
        given.get("verifier") or base.verifier,
    )


def load_hf(
    path: str,
    split: str = "train",
    *,
    subset: str | None = None,
    preset: str | None = None,
    id_field: str | None = None,
    prompt_field: str | None = None,
    answer_field: str | None = None,
    meta_fields: list[str] | tuple[str, ...] | None = None,
    verifier: str | None = None,
    skip_bad: bool = False,
    cache_dir: str | None = None,
) -> list[Task]:
    """Tasks from one split of a Hugging Face dataset, in the dataset's order."""
    if preset is not None and preset not in PRESETS:
        raise TaskLoadError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    pre = PRESETS.get(preset) if preset else None
    given = {"id_field": id_field, "prompt_field": prompt_field, "answer_field": answer_field, "meta_fields": meta_fields, "verifier": verifier}
    fields = _fields(pre, given)
    ds, has_splits = open_split(path, split, subset, cache_dir)
    where = f"{path} [{split}]" if has_splits else path
    columns = list(ds.column_names)
    missing = [c for c in (fields.prompt_field, fields.answer_field, *fields.meta_fields) if c not in columns]
    if missing:
        hint = f" (preset {preset})" if pre else ""
        raise TaskLoadError(
            f"{where}: missing column(s) {', '.join(map(repr, missing))}{hint} (columns: {', '.join(columns)}); map them with task.prompt_field / task.answer_field"
        )
    extra_meta = tuple(c for c in (pre.optional_meta if pre else ()) if c in columns and c not in fields.meta_fields)
    fields = FieldMap(fields.id_field, fields.prompt_field, fields.answer_field, fields.meta_fields + extra_meta, fields.verifier)
    # the preset's extraction reads the preset's own answer column, not one the user chose instead
    extract = pre.extract if pre is not None and fields.answer_field == pre.answer_field else None
    keep = [c for c in dict.fromkeys((fields.id_field, fields.prompt_field, fields.answer_field, *fields.meta_fields)) if c in columns]
    records = ds.select_columns(keep).to_list()  # only the columns read: HotpotQA's contexts stay on disk

    def rows():
        for i, record in enumerate(records):
            pos = f"row {i}"
            if extract is not None:
                gold = extract(record[fields.answer_field])
                if gold is None:
                    yield pos, TaskLoadError(f"{where}, {pos}: field {fields.answer_field!r} has no {pre.expects} (preset {pre.name})")
                    continue
                record = {**record, fields.answer_field: gold}
            yield pos, record

    # default ids: {name}-{split}-{row}, or {file stem}-{row} for a one-split source (as task files)
    name = Path(path.rstrip("/")).stem or "hf"
    return _collect(rows(), where, fields, skip_bad, source=f"hf:{path}", stem=f"{name}-{split}" if has_splits else name)
