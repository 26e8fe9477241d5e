"""pass@k, maj@k and the ET-Agent metrics against hand-computed values."""

from math import comb

import pytest

from tirl.eval.equivalence import same_fn
from tirl.eval.metrics import (
    efficiency,
    maj_at_k,
    majority_answer,
    mean_pass_at_k,
    pass_at_k,
    reasoning_length,
    successful_execution,
)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 1, 1, 0.25),
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (8, 3, 4, 1 - 5 / 70),  # 1 - C(5,4)/C(8,4)
        (4, 0, 1, 0.0),
        (4, 0, 4, 0.0),
        (4, 4, 1, 1.0),
        (5, 3, 3, 1.0),  # n - c = 2 < k: every draw of 3 holds a correct sample
        (1, 1, 1, 1.0),
    ],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_binomials_and_is_stable_for_large_n():
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1.0 - comb(n - c, k) / comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    # C(2000, 1000) overflows a float; the product form does not
    assert pass_at_k(2000, 1, 1000) == pytest.approx(0.5)
    assert 0.0 < pass_at_k(2000, 1, 10) < 1.0


@pytest.mark.parametrize(("n", "c", "k"), [(4, 1, 5), (4, 5, 1), (4, 1, 0), (4, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="pass@k"):
        pass_at_k(n, c, k)


def test_mean_pass_at_k():
    out = mean_pass_at_k([(4, 1), (4, 0), (4, 4)], [1, 2, 4])
    assert out == pytest.approx({1: (0.25 + 0 + 1) / 3, 2: (0.5 + 0 + 1) / 3, 4: (1 + 0 + 1) / 3})
    with pytest.raises(ValueError, match="k <= n"):
        mean_pass_at_k([(4, 1), (2, 1)], [4])
    assert mean_pass_at_k([], [1]) == {1: 0.0}


def eq(a, b):
    return a == b


def test_maj_at_k_plain_majority():
    answers = ["3", "5", "5", "3", "5"]
    assert maj_at_k(answers, 5, lambda a: a == "5", eq) == 1.0
    assert maj_at_k(answers, 5, lambda a: a == "3", eq) == 0.0
    # only the first k answers vote: "3","5","5" -> "5"
    assert majority_answer(answers[:3], eq) == "5"
    assert maj_at_k(answers, 1, lambda a: a == "3", eq) == 1.0


def test_maj_at_k_ties_go_to_first_occurrence():
    assert majority_answer(["7", "9", "9", "7"], eq) == "7"
    assert majority_answer(["9", "7", "7", "9"], eq) == "9"
    assert maj_at_k(["7", "9", "9", "7"], 4, lambda a: a == "7", eq) == 1.0
    assert maj_at_k(["7", "9", "9", "7"], 4, lambda a: a == "9", eq) == 0.0


def test_maj_at_k_none_answers_never_win():
    answers = [None, None, None, "4"]
    assert majority_answer(answers, eq) == "4"
    assert maj_at_k(answers, 4, lambda a: a == "4", eq) == 1.0
    # a None "answer" is never passed to is_correct, even one that would accept it
    assert maj_at_k([None, None], 2, lambda a: True, eq) == 0.0
    assert majority_answer([None], eq) is None


def test_maj_at_k_equivalence_classes():
    same = same_fn("math")  # plain numerals are decided in-process, no math-verify worker
    answers = ["1,234", "99", "1234", "099", "$1234$"]
    # classes: {1,234 1234 $1234$} (3 votes) beats {99 099} (2)
    assert majority_answer(answers, same) == "1,234"
    assert maj_at_k(answers, 5, lambda a: same("1234", a), same) == 1.0
    # without the equivalence, the tie of singletons-and-pairs goes elsewhere
    assert majority_answer(answers, eq) == "1,234"  # five singleton classes: first occurrence
    assert majority_answer(["99", "1,234", "1234", "99"], eq) == "99"
    assert majority_answer(["99", "1,234", "1234", "99", "1{,}234"], same) == "1,234"

    qa = same_fn("qa")
    assert majority_answer(["Paris", "london", "The London.", "paris", "LONDON"], qa) == "london"
    with pytest.raises(ValueError, match="known"):
        same_fn("nope")


def test_maj_at_k_rejects_bad_k():
    with pytest.raises(ValueError, match="maj@k"):
        maj_at_k(["1"], 2, lambda a: True, eq)
    with pytest.raises(ValueError, match="maj@k"):
        maj_at_k(["1"], 0, lambda a: True, eq)


def test_et_agent_metrics():
    correct = [1.0, 1.0, 0.0, 1.0]
    calls = [0, 2, 1, 4]
    assert efficiency(correct, calls) == pytest.approx((1 + 0.5 + 0 + 0.25) / 4)
    assert successful_execution(correct, [0, 2, 3, 1]) == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert reasoning_length(correct, [10, 20, 5, 0]) == pytest.approx((0.1 + 0.05 + 0 + 0) / 4)
    assert efficiency([], []) == 0.0
    with pytest.raises(ValueError):
        efficiency([1.0], [1, 2])
