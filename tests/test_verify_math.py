"""verify_math: equivalences, non-equivalences, garbage, the hard timeout, thread safety."""

from __future__ import annotations

import threading
import time

import pytest

import tirl.rewards.math as math_mod
from tirl.rewards.math import MathVerifier, is_word_answer, math_verify_stats, verify_math


def slow_equivalent(gold: str, pred: str) -> bool:
    """A stand-in backend that never answers in time (imported by the worker process)."""
    time.sleep(60)
    return True


@pytest.mark.parametrize(
    "pred,gold",
    [
        ("1,234", "1234"),
        ("1234", "1,234"),
        ("12,345", "12345"),
        ("12{,}345", "12345"),
        ("12\\,345", "12345"),
        ("3.0", "3"),
        (" 42 ", "42"),
        ("42.", "42"),
        ("$1,234", "1234"),
        ("\\$1,234", "1234"),
        ("-7", "-7"),
        ("0.5", "\\frac{1}{2}"),
        ("\\frac{1}{2}", "0.5"),
        ("\\dfrac{3}{4}", "3/4"),
        ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"),
        ("2\\pi", "\\pi \\cdot 2"),
        ("\\binom{10}{5}", "252"),
        ("x^2 + 2x + 1", "(x+1)^2"),
        ("\\{3, 1, 2\\}", "1, 2, 3"),
        ("[-1, 1]", "[-1,1]"),
        ("$\\frac{1}{2}$", "1/2"),
        ("The answer is \\boxed{7}", "7"),
        ("so \\boxed{\\text{No}}.", "No"),
        ("\\text{Yes}", "Yes"),
        ("yes.", "Yes"),
        ("\\textbf{No integer solutions}", "No integer solutions"),
        ("always greater than 20", "Always greater than 20"),
    ],
)
def test_equivalent(pred, gold):
    assert verify_math(pred, gold) is True


@pytest.mark.parametrize(
    "pred,gold",
    [
        ("3", "4"),
        ("1,234", "1235"),
        ("1234", "12,340"),
        ("0.5", "\\frac{1}{3}"),
        ("-7", "7"),
        ("x^2", "x^3"),
        ("\\{1, 2\\}", "1, 2, 3"),
        ("No", "Yes"),
        ("on", "No"),  # math-verify alone would parse both as n*o
        ("", "3"),
        ("3", ""),
        (None, "3"),
        ("3", None),
    ],
)
def test_not_equivalent(pred, gold):
    assert verify_math(pred, gold) is False


@pytest.mark.parametrize(
    "garbage",
    ["}{", "\\frac{", "\\boxed{", "$$$", "\\\\\\", "((((((", "🙂 ∑ ∫", "\x00\x01", "a" * 30_000, "\\begin{pmatrix}", "1/0"],
)
def test_garbage_is_false_not_raising(garbage):
    assert verify_math(garbage, "3") is False
    assert verify_math("3", garbage) is False  # no garbage gold equals 3; a broken gold is the gold self-test's business


def test_word_answer_detection():
    assert is_word_answer("No") and is_word_answer("\\text{Yes}") and is_word_answer("Monotonically increasing")
    assert not is_word_answer("n") and not is_word_answer("ab") and not is_word_answer("\\sin x")
    assert not is_word_answer("x^2") and not is_word_answer("3 apples") and not is_word_answer("12 and 15")
    assert is_word_answer("Always greater than 20") and not is_word_answer("42")


def test_pathological_input_times_out_and_worker_is_replaced():
    # 9^(9^9) makes SymPy compute a 370-million-digit integer inside C code that holds the GIL:
    # no thread or signal timeout can stop it; the worker process is killed instead.
    before = math_verify_stats().timeouts
    t0 = time.monotonic()
    assert verify_math("9^{9^{9}}", "3", timeout_s=1.0) is False
    assert time.monotonic() - t0 < 5.0
    assert math_verify_stats().timeouts == before + 1
    assert verify_math("\\frac{2}{4}", "0.5") is True  # a fresh worker answers the next call


def test_slow_backend_monkeypatched_times_out(monkeypatch):
    verifier = MathVerifier(max_workers=1, target=f"{__name__}:slow_equivalent")
    monkeypatch.setattr(math_mod, "_default", verifier)
    try:
        t0 = time.monotonic()
        assert verify_math("\\frac{1}{2}", "0.5", timeout_s=0.5) is False
        elapsed = time.monotonic() - t0
        assert elapsed < 10.0  # worker start-up (not part of the deadline) + 0.5 s
        assert verifier.stats().timeouts == 1 and verifier.stats().isolated == 1
        assert verify_math("7", "7", timeout_s=0.5) is True  # fast paths never wait on the backend
        assert verifier._caller.n_workers == 0  # the stuck worker was killed and reaped
    finally:
        verifier.close()


def test_bad_timeout_is_a_programming_error():
    with pytest.raises(ValueError, match="timeout_s"):
        verify_math("1", "1", timeout_s=0)


def test_safe_from_many_threads():
    cases = [
        ("\\frac{1}{2}", "0.5", True),
        ("\\sqrt{4}", "2", True),
        ("x+x", "2x", True),
        ("\\frac{1}{3}", "0.5", False),
        ("1,234", "1234", True),
        ("No", "Yes", False),
    ]
    results: list[tuple[bool, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(offset: int) -> None:
        try:
            for k in range(6):
                pred, gold, want = cases[(offset + k) % len(cases)]
                got = verify_math(pred, gold)
                with lock:
                    results.append((got, want))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 48
    assert all(got == want for got, want in results)
    assert math_mod.default_verifier()._caller.n_workers <= math_mod.default_verifier()._caller.max_workers
