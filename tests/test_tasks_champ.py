"""CHAMP loader: all 270 problems, gold self-test, answers a model would box, deterministic split."""

from __future__ import annotations

from collections import Counter

import pytest

from tirl.rewards.outcome import gold_self_test
from tirl.rewards.verify import score_answer
from tirl.tasks.champ import canonical_answers, load_champ


@pytest.fixture(scope="module")
def champ():
    return {t.id: t for t in load_champ("all")}


def test_all_problems_loaded(champ):
    assert len(champ) == 270
    cats = Counter(t.meta["category"] for t in champ.values())
    assert cats == {"Number-Theory": 80, "Inequality": 50, "Polynomial": 50, "Sequence": 50, "Combinatorics": 40}
    for t in champ.values():
        assert t.meta["source"] == "champ" and t.meta["verifier"] == "math"
        assert isinstance(t.prompt, str) and t.prompt
        assert t.answer and "@@" not in str(t.answer) and "@@" not in t.meta["answer_text"]
        assert t.meta["hints"] or t.meta["concepts"]


def test_gold_self_test_all_270(champ):
    assert gold_self_test(champ.values()) == []


@pytest.mark.parametrize(
    "task_id,model_answer,expected",
    [
        ("champ-Combinatorics_1", "239", 1.0),
        ("champ-Combinatorics_2", "\\binom{10}{5}", 1.0),  # "C(10, 5), or equivalently 252"
        ("champ-Number-Theory_19", "0", 1.0),  # "0 is the only possible value"
        ("champ-Number-Theory_19", "1", 0.0),
        ("champ-Sequence_7", "3", 1.0),  # "The limit exists and is equal to 3"
        ("champ-Inequality_33", "98", 1.0),  # "98 values"
        ("champ-Number-Theory_3", "\\{625, 376\\}", 1.0),  # "376 and 625"
        ("champ-Number-Theory_3", "376", 0.0),
        ("champ-Number-Theory_7", "\\text{No integer solutions}", 1.0),
        ("champ-Number-Theory_7", "none", 1.0),
        ("champ-Number-Theory_7", "1", 0.0),
        ("champ-Combinatorics_17", "No", 1.0),
        ("champ-Combinatorics_17", "on", 0.0),  # math-verify alone would read both as n*o
        ("champ-Sequence_25", "\\text{No}", 1.0),  # "It is not possible"
        ("champ-Combinatorics_29", "\\frac{n(n-1)(n-2)(n-3)}{24}", 1.0),
        ("champ-Inequality_18", "\\frac{1}{\\sqrt{3}}", 1.0),
        ("champ-Polynomial_5", "(2, 8), (8, 2)", 1.0),
        ("champ-Polynomial_5", "(8, 2)", 0.0),
    ],
)
def test_answers_a_model_would_box(champ, task_id, model_answer, expected):
    assert score_answer(champ[task_id], model_answer) == expected


def test_canonicalisation_rules():
    assert canonical_answers("x", "0 is the only possible value") == ["0"]
    assert canonical_answers("x", "100 (i.e., all values)") == ["100"]
    assert canonical_answers("x", "At most 0 integer-valued zeros (i.e., no integer zeros)") == ["0"]
    assert canonical_answers("x", "The limit exists and is equal to @@2/3@@") == ["2/3"]
    assert canonical_answers("x", "1, 4 and 9") == ["1, 4, 9"]
    assert canonical_answers("x", "@@n(n-3)/2@@") == ["n(n-3)/2"]
    assert canonical_answers("x", "No such values")[0] == "No such values"


def test_split_deterministic_and_disjoint():
    train, test = load_champ("train"), load_champ("test")
    assert len(train) + len(test) == 270
    assert not {t.id for t in train} & {t.id for t in test}
    assert 30 <= len(test) <= 80
    assert [t.id for t in test] == [t.id for t in load_champ("test")]
    with pytest.raises(ValueError, match="split"):
        load_champ("validation")


def test_returns_fresh_objects():
    a = load_champ("all")
    a[0].meta["hints"].append("mutated")
    a[0].answer = "mutated"
    b = load_champ("all")
    assert "mutated" not in b[0].meta["hints"] and b[0].answer != "mutated"
