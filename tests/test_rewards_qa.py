"""SQuAD normalisation and token F1, against hand-computed values."""

from __future__ import annotations

import pytest

from tirl.rewards.qa import f1, max_f1, normalize_answer


def test_normalize():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("An apple, a pear.") == "apple pear"
    assert normalize_answer("theory") == "theory"  # articles only as whole words


@pytest.mark.parametrize(
    "pred,gold,value",
    [
        ("Paris", "Paris", 1.0),
        ("the Paris", "Paris!", 1.0),
        ("Paris France", "Paris", 2 / 3),  # p = 1/2, r = 1 -> 2 * 0.5 * 1 / 1.5
        ("New York City", "New York", 0.8),  # p = 2/3, r = 1
        ("cat dog", "dog bird fish", 0.4),  # p = 1/2, r = 1/3 -> 2*(1/6)/(5/6)
        ("a a b", "a b b", 2 / 3),  # "a" is an article: pred [b], gold [b, b] -> p = 1, r = 1/2
        ("London", "Paris", 0.0),
        ("", "", 1.0),
        ("the", "Paris", 0.0),  # empty after normalisation vs non-empty
    ],
)
def test_f1_values(pred, gold, value):
    assert f1(pred, gold) == pytest.approx(value)


def test_repeated_tokens_count_as_a_multiset():
    # pred [x x y], gold [x y y]: shared = min(2,1) + min(1,2) = 2 -> p = r = 2/3
    assert f1("x x y", "x y y") == pytest.approx(2 / 3)


def test_max_f1():
    assert max_f1("New York", ["new york city", "NYC"]) == pytest.approx(0.8)
    assert max_f1("nyc", ["new york city", "NYC"]) == 1.0
    assert max_f1("x", []) == 0.0
    assert max_f1("Paris", "Paris") == 1.0
