"""Presets for the common layouts of Hugging Face datasets (``task.preset``).

A preset names the columns that hold the prompt, the gold answer and the id, the verifier, the
columns worth keeping in ``Task.meta`` (when the dataset has them), and how the gold answer is
read out of the answer column:

- ``gsm8k`` (``openai/gsm8k``, subset ``main``): ``question``; the gold is what follows the last
  ``####`` of ``answer`` (the worked solution ends ``#### 72``), thousands separators removed;
  verifier ``math``.
- ``math`` (Hendrycks MATH and its copies, e.g. MATH-500): ``problem``; the gold is the last
  ``\\boxed{}`` of ``solution`` (ALGORITHMS.md §1, ``tirl.protocol.answer.last_boxed``);
  verifier ``math``; ``level``, ``type``, ``subject`` kept in meta; id ``unique_id`` where present.
- ``hotpotqa`` (``hotpotqa/hotpot_qa``, subsets ``distractor``/``fullwiki``): ``question``,
  ``answer``, ``id``; verifier ``qa`` (F1/EM); ``type`` and ``level`` kept in meta. Evaluate on
  ``validation`` (its test split has no answers).

A field set in the config (``task.prompt_field`` ...) replaces the preset's; an answer column
chosen that way is read as it is, without the preset's extraction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def gsm8k_answer(value: Any) -> str | None:
    """``"...\\n#### 1,234"`` -> ``"1234"``; None without a ``####`` line."""
    if not isinstance(value, str) or "####" not in value:
        return None
    gold = value.rsplit("####", 1)[1].strip().replace(",", "")
    return gold or None


def math_answer(value: Any) -> str | None:
    """The last ``\\boxed{}`` of a MATH solution; None when it has none (or it is unbalanced)."""
    from tirl.protocol.answer import last_boxed  # answer extraction lives with the protocols

    if not isinstance(value, str):
        return None
    gold = last_boxed(value)
    return gold.strip() if gold and gold.strip() else None


@dataclass(frozen=True)
class HFPreset:
    name: str
    prompt_field: str
    answer_field: str
    id_field: str = "id"
    verifier: str = "math"
    optional_meta: tuple[str, ...] = ()
    """Columns copied into Task.meta when the dataset has them."""
    extract: Callable[[Any], str | None] | None = None
    """The gold from the answer column's value (None: not found, the row is bad)."""
    expects: str = ""
    """What ``extract`` looks for, for the error message of a row without it."""


PRESETS: dict[str, HFPreset] = {
    "gsm8k": HFPreset("gsm8k", "question", "answer", extract=gsm8k_answer, expects="final '#### answer' line"),
    "math": HFPreset(
        "math",
        "problem",
        "solution",
        id_field="unique_id",
        optional_meta=("level", "type", "subject"),
        extract=math_answer,
        expects="\\boxed{} answer",
    ),
    "hotpotqa": HFPreset("hotpotqa", "question", "answer", verifier="qa", optional_meta=("type", "level")),
}
