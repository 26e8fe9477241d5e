"""The ``task`` section: which tasks train and evaluate the policy (``tirl.tasks``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tirl.config.base import Section

# the field-mapping keys: a task file's or a Hugging Face dataset's column names
FIELD_KEYS = ("id_field", "prompt_field", "answer_field", "meta_fields", "verifier")


class TaskConfig(Section):
    name: str = "arith"
    """arith, lookup, champ, hf (a Hugging Face dataset: task.path), or a .jsonl/.parquet file."""
    difficulty: int | list[int] | None = None
    """arith levels (1-5) or lookup levels (1-4) to draw from; None: all levels."""
    n_train: int = Field(2048, ge=1)
    """Training tasks (for arith: generated; for files: the first n)."""
    n_eval: int = Field(64, ge=1)
    """Held-out tasks for evaluation."""
    split: str = "train"
    """The split training tasks come from (for hf: the dataset's split name)."""
    eval_split: str = "test"
    """The split held-out tasks come from (hf: e.g. test, or validation for HotpotQA)."""
    seed: int = 0
    path: str | None = None
    """task.name=hf: a hub dataset id (``openai/gsm8k``) or a local path: a ``save_to_disk``
    directory, a directory of data files, or one .json/.jsonl/.parquet/.arrow/.csv file."""
    subset: str | None = None
    """task.name=hf: the dataset's configuration (``main`` for GSM8K, ``distractor`` for HotpotQA)."""
    preset: Literal["gsm8k", "math", "hotpotqa"] | None = None
    """task.name=hf: a known layout (fields, answer extraction, verifier); see tirl.tasks.hf_presets."""
    id_field: str | None = None
    """Field mapping (hf and task files): the id column; None: the preset's or ``id``."""
    prompt_field: str | None = None
    """The prompt column; None: the preset's or ``prompt``."""
    answer_field: str | None = None
    """The gold-answer column; None: the preset's or ``answer``."""
    meta_fields: list[str] | None = None
    """Columns copied into Task.meta; None: the preset's or none."""
    verifier: Literal["math", "qa", "exact"] | None = None
    """How answers are scored; None: the preset's or ``math``."""

    @model_validator(mode="after")
    def _source_fields(self) -> TaskConfig:
        if self.name == "hf" and not self.path:
            raise ValueError("task.name=hf needs task.path (a hub dataset id or a local path)")
        if self.name != "hf":
            given = [k for k in ("path", "subset", "preset") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"task.{given[0]} is read only with task.name=hf (task.name is {self.name!r})")
        if not self.is_hf and not self.is_file:
            given = [k for k in FIELD_KEYS if getattr(self, k) is not None]
            if given:
                raise ValueError(f"task.{given[0]} maps the fields of hf datasets and task files, not of {self.name!r}")
        return self

    @property
    def is_hf(self) -> bool:
        return self.name == "hf"

    @property
    def is_file(self) -> bool:
        """A task file (``tirl.tasks.files`` loads these suffixes)."""
        return self.name.lower().endswith((".jsonl", ".parquet"))

    def field_options(self) -> dict:
        """The field mapping that was set, as loader keyword arguments."""
        return {k: getattr(self, k) for k in FIELD_KEYS if getattr(self, k) is not None}
