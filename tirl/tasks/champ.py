"""The CHAMP competition problems (Mao et al., 2024, "CHAMP: A Competition-level Dataset for
Fine-Grained Analyses of LLMs' Mathematical Reasoning Capabilities") as Tasks.

270 problems in five categories (Combinatorics, Inequality, Number-Theory, Polynomial,
Sequence), read from the ``champ-dataset`` package. CHAMP's answers are written for a human or
LLM judge: ``0 is the only possible value``, ``@@C(10, 5)@@, or equivalently @@252@@``, ``No
integer solutions``. A verifier cannot compare a model's ``\\boxed{0}`` with such a sentence, so
each answer is rewritten into one or more short forms a model would box:

- rules for the recurring phrasings ("X is the only possible value", "The limit exists and is
  equal to X", "N values (i.e., ...)", "A and B"),
- a table (``_OVERRIDES``) for the rest: LaTeX for ``C(n, k)``/``floor``, tuples for solution
  pairs (math-verify compares an equation-list gold like ``x=6, y=5`` loosely enough to accept
  ``(5, 6)``; a tuple gold still accepts ``x=6, y=5`` but not the swap), and acceptable alternatives for negative answers ("No integer solutions" also accepts
  "None", "No solutions" and the empty set; "It is not possible" also accepts "No").

``Task.answer`` is a string, or a list of acceptable alternatives (any one scores 1; see
``tirl.rewards.verify``). The original answer text is kept in ``meta["answer_text"]``.
Caveat: equivalence is symbolic, so for "factorize" problems an unfactored but equal
polynomial is also accepted.

The split is deterministic: about 20% of the problems (by a hash of the CHAMP identifier) are
"test", the rest "train".
"""

from __future__ import annotations

import re
from functools import lru_cache

from tirl.tasks.splits import split_of
from tirl.types import Task

CHAMP_VERSION = "v0"
TEST_FRACTION = 0.2

_NONE_ALTS = ["None", "No solutions", "No solution", "\\emptyset"]
_NOT_EXIST_ALTS = ["Does not exist", "No"]

# CHAMP identifier -> acceptable answers, for answers the rules below cannot rewrite.
_OVERRIDES: dict[str, list[str]] = {
    "P_Combinatorics_2": ["252"],
    "P_Combinatorics_3": ["2^{\\lfloor n/2 \\rfloor} \\cdot \\lfloor n/2 \\rfloor!"],
    "P_Combinatorics_14": ["\\frac{5}{14}"],
    "P_Combinatorics_16": ["\\binom{n+1}{2m+1}"],
    "P_Combinatorics_27": ["504"],
    "P_Combinatorics_29": ["\\binom{n}{4}"],
    "P_Combinatorics_33": ["\\left(\\frac{n(n+1)}{2}\\right)^2"],
    "P_Combinatorics_37": ["\\frac{n(n+1)(2n+1)}{6}"],
    "P_Inequality_9": ["x(n)<y(n-1)"],
    "P_Inequality_12": ["\\sum_{k=1}^{n} \\frac{1}{k}"],
    "P_Inequality_18": ["\\frac{\\sqrt{3}}{3}"],
    "P_Inequality_32": ["x(n)>y(n-1)"],
    "P_Inequality_44": ["1"],
    "P_Number-Theory_4": ["(6, 5)"],
    "P_Number-Theory_28": ["n"],
    "P_Number-Theory_31": ["(2, 1)"],
    "P_Number-Theory_39": ["(0, 2), (9, 11)"],
    "P_Number-Theory_44": ["(0, 0)", "x=y=0"],
    "P_Number-Theory_51": ["1176470588235294"],
    "P_Number-Theory_59": ["Infinitely many", "Infinitely many solutions", "\\infty"],
    "P_Number-Theory_65": ["(3, 2), (5, 3)"],
    "P_Number-Theory_70": ["(1, 1), (3, 2)"],
    "P_Polynomial_2": [
        "a(1\\pm\\sqrt{2}), \\frac{a(1\\pm\\sqrt{5})}{2}",
        "a(1+\\sqrt{2}), a(1-\\sqrt{2}), \\frac{a(1+\\sqrt{5})}{2}, \\frac{a(1-\\sqrt{5})}{2}",
    ],
    "P_Polynomial_5": ["(8, 2), (2, 8)"],
    "P_Polynomial_6": ["(1, 2), (2, 1)"],
    "P_Polynomial_13": ["(3, -4)"],
    "P_Polynomial_15": ["0, 1", "f(x)=0, f(x)=1"],
    "P_Polynomial_20": ["f(x)=0", "0"],
    "P_Polynomial_21": ["(3, -7, 4)"],
    "P_Polynomial_28": ["\\frac{(-1)^{n+1}+n+1}{n+2}"],
    "P_Polynomial_46": ["x(x-1)(x-2)\\cdots(x-2022)", "\\prod_{k=0}^{2022}(x-k)"],
    "P_Sequence_2": ["Always greater than 20", "Always greater"],
    "P_Sequence_5": ["No", "There are no prime numbers in the sequence", "None"],
    "P_Sequence_12": ["The limit does not exist", "DNE", "\\infty", *_NOT_EXIST_ALTS],
    "P_Sequence_13": ["Such a sequence is not possible", "Not possible", "No"],
    "P_Sequence_17": ["The sequence is not periodic", "Not periodic", "No"],
    "P_Sequence_24": ["The sequence does not exist", *_NOT_EXIST_ALTS],
    "P_Sequence_25": ["It is not possible", "Not possible", "No"],
    "P_Sequence_36": ["Monotonically increasing", "Increasing"],
    "P_Sequence_38": ["The sequence does not exist", *_NOT_EXIST_ALTS],
    "P_Sequence_43": ["\\frac{1}{8}, \\frac{1}{64}, \\frac{1}{512}, \\ldots", "\\left(\\frac{1}{8}\\right)^n"],
    "P_Sequence_44": ["1"],
    "P_Sequence_48": ["8"],
}

_NEGATIVE_PHRASES = (
    "No integer solutions",
    "No positive integer solutions",
    "No possible solutions",
    "No such values",
)
_PARENTHETICAL = re.compile(r"\s*\((?:i\.e\.,|none |no )[^()]*\)\s*$")
_RULES: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?P<x>.+?) is the only possible value"),
    re.compile(r"The limit exists and is equal to (?P<x>.+)"),
    re.compile(r"The only possible value for the limit is (?P<x>.+)"),
    # counts with a noun or a qualifier: "2 inequalities", "At least 1 number", "At most 0 values"
    re.compile(r"(?:At most |At least |Exactly )?(?P<x>-?\d+)(?: [A-Za-z-]+)*"),
)


def canonical_answers(identifier: str, raw_answer: str) -> list[str]:
    """The short forms a model may box for a CHAMP answer (first = preferred)."""
    if identifier in _OVERRIDES:
        return list(_OVERRIDES[identifier])
    text = raw_answer.replace("@@", "").replace("\u2212", "-").strip()
    text = _PARENTHETICAL.sub("", text)
    if text in _NEGATIVE_PHRASES:
        return [text, *_NONE_ALTS]
    for rule in _RULES:
        m = rule.fullmatch(text)
        if m:
            return [m.group("x").strip()]
    if " and " in text:  # "376 and 625", "1, 4 and 9", "x=16 and x=81": a set of answers
        return [", ".join(part.strip() for part in re.split(r",| and ", text))]
    return [text]


@lru_cache(maxsize=1)
def _load_all() -> tuple[Task, ...]:
    import champ_dataset  # the package's own reader; imported here so tirl.tasks stays light

    dataset = champ_dataset.load(CHAMP_VERSION)
    tasks = []
    for identifier, p in dataset.problems.items():
        answers = canonical_answers(identifier, p.raw_answer)
        hints, concepts = [], []
        for ref in p.ch_list or []:
            item = dataset[ref]
            (concepts if ref.startswith("C_") else hints).append(item.text)
        tasks.append(
            Task(
                id=f"champ-{identifier.removeprefix('P_')}",
                prompt=p.text,
                answer=answers[0] if len(answers) == 1 else answers,
                meta={
                    "source": "champ",
                    "verifier": "math",
                    "category": p.category,
                    "champ_id": identifier,
                    "answer_text": p.answer,
                    "hints": hints,
                    "concepts": concepts,
                    "solution_steps": [s.text for s in p.solution.steps] if p.solution else [],
                },
            )
        )
    return tuple(tasks)


def champ_split(task: Task) -> str:
    """'test' for about ``TEST_FRACTION`` of the problems (by identifier hash), else 'train'."""
    return split_of(f"champ|{task.meta['champ_id']}", {"train": 1 - TEST_FRACTION, "test": TEST_FRACTION})


def load_champ(split: str = "all") -> list[Task]:
    """CHAMP problems of one split ("train", "test" or "all"), in the dataset's order.

    Returns fresh Task objects (callers may mutate them)."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"unknown CHAMP split {split!r}; choose one of train, test, all")
    out = []
    for t in _load_all():
        if split == "all" or champ_split(t) == split:
            meta = {k: (list(v) if isinstance(v, list) else v) for k, v in t.meta.items()}
            answer = list(t.answer) if isinstance(t.answer, list) else t.answer
            out.append(Task(id=t.id, prompt=t.prompt, answer=answer, meta=meta))
    return out
