"""One entry point for every task source: ``load_tasks(name, n, seed, split, **options)``.

``name`` is a registered source ("arith", "champ") or a path to a ``.jsonl``/``.parquet`` file.

- "arith": generated; ``n`` is required. Options: ``difficulty`` (a level 1..5 or a list of
  levels, default all), ``start`` (index of the first problem). Splits "train", "val", "test"
  never share a problem (see ``tirl.tasks.arith``).
- "lookup": generated multi-hop questions about the fictional world of ``seed``
  (``tirl.tasks.lookup``); ``n`` is required. Options: ``difficulty`` (a level 1..4 or a list of
  levels, default all), ``start``. Splits never share an entity. The search tool's corpus for
  it is ``tirl.tasks.lookup.corpus_path(seed)``.
- "champ": the 270 CHAMP problems; splits "train" (~80%), "test" (~20%) or "all".
- "hf": a Hugging Face dataset (``tirl.tasks.hf``); options: ``path`` (required), ``subset``,
  ``preset`` and the field mapping below; ``split`` is the dataset's split.
- a file: options are those of ``tirl.tasks.files`` (``id_field``, ``prompt_field``,
  ``answer_field``, ``meta_fields``, ``verifier``, ``skip_bad``). A file is one split: ``split``
  is not used to filter it.

For the loaded sources, ``n`` (when smaller than the source) picks a ``seed``-determined subset
in source order; ``n=None`` takes everything.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tirl.tasks.arith import generate_arith
from tirl.tasks.champ import load_champ
from tirl.tasks.files import LOADERS, TaskLoadError, load_file
from tirl.tasks.hf import load_hf
from tirl.tasks.lookup import default_world, generate_lookup
from tirl.types import Task


def _subset(tasks: list[Task], n: int | None, seed: int) -> list[Task]:
    if n is None or n >= len(tasks):
        return tasks
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    keep = sorted(random.Random(f"subset|{seed}").sample(range(len(tasks)), n))
    return [tasks[i] for i in keep]


def _arith(n: int | None, seed: int, split: str, **options: Any) -> list[Task]:
    if n is None:
        raise ValueError("'arith' generates problems without end: pass n")
    unknown = set(options) - {"difficulty", "start"}
    if unknown:
        raise TypeError(f"unknown option(s) for 'arith': {', '.join(sorted(unknown))} (known: difficulty, start)")
    return generate_arith(n, seed, split=split, **options)


def _lookup(n: int | None, seed: int, split: str, **options: Any) -> list[Task]:
    if n is None:
        raise ValueError("'lookup' generates questions without end: pass n")
    unknown = set(options) - {"difficulty", "start"}
    if unknown:
        raise TypeError(f"unknown option(s) for 'lookup': {', '.join(sorted(unknown))} (known: difficulty, start)")
    return generate_lookup(n, default_world(seed), split=split, **options)


def _champ(n: int | None, seed: int, split: str, **options: Any) -> list[Task]:
    if options:
        raise TypeError(f"'champ' takes no options, got {', '.join(sorted(options))}")
    return _subset(load_champ(split), n, seed)


def _hf(n: int | None, seed: int, split: str, path: str | None = None, **options: Any) -> list[Task]:
    if not path:
        raise TaskLoadError("task 'hf' needs a path (task.path: a hub dataset id or a local path)")
    return _subset(load_hf(path, split, **options), n, seed)


SOURCES: dict[str, Callable[..., list[Task]]] = {"arith": _arith, "champ": _champ, "hf": _hf, "lookup": _lookup}


def load_tasks(name: str, n: int | None = None, seed: int = 0, split: str = "train", **options: Any) -> list[Task]:
    """Tasks from a named source or a task file."""
    if name in SOURCES:
        try:
            return SOURCES[name](n, seed, split, **options)
        except (ValueError, TypeError) as e:  # the sources' argument checks: split, difficulty, options
            if isinstance(e, TaskLoadError):
                raise
            raise TaskLoadError(f"task {name!r}: {e}") from e
    if Path(name).suffix.lower() in LOADERS:
        return _subset(load_file(name, **options), n, seed)
    raise TaskLoadError(f"unknown task source {name!r}; choose one of {', '.join(sorted(SOURCES))}, or a path to a {' or '.join(LOADERS)} file")
