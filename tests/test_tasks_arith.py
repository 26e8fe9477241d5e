"""Arith generator: determinism, levels, exact answers, split disjointness, reference solutions."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from tirl.rewards.outcome import gold_self_test
from tirl.tasks.arith import LEVELS, generate_arith, make_arith_task, reference_solution
from tirl.tasks.arith_themes import THEME_NAMES
from tirl.types import Script


def _run(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {})  # a fresh namespace per step: steps must not rely on each other's variables
    return out.getvalue()


def _n_ops(expression: str) -> dict[str, int]:
    tokens = expression.replace("(", " ").replace(")", " ").split()
    return {op: tokens.count(op) for op in ("+", "-", "*", "//")}


def test_deterministic_given_seed_index_level():
    a = generate_arith(20, seed=7, difficulty=[1, 2, 3, 4, 5])
    b = generate_arith(20, seed=7, difficulty=[1, 2, 3, 4, 5])
    assert [(t.id, t.prompt, t.answer, t.meta) for t in a] == [(t.id, t.prompt, t.answer, t.meta) for t in b]
    # a single problem does not depend on what was generated before it
    t = make_arith_task(seed=7, index=13, level=4)
    assert (t.prompt, t.answer) == (a[13].prompt, a[13].answer) and a[13].meta["difficulty"] == 4


def test_different_seeds_differ():
    a = {t.prompt for t in generate_arith(50, seed=1, difficulty=3)}
    b = {t.prompt for t in generate_arith(50, seed=2, difficulty=3)}
    assert not a & b


@pytest.mark.parametrize("level", LEVELS)
def test_level_structure_and_exact_answer(level):
    expected = {
        1: lambda c: c["+"] + c["-"] == 1 and c["*"] == c["//"] == 0,
        2: lambda c: c["+"] + c["-"] == 2 and c["*"] == c["//"] == 0,
        3: lambda c: c["+"] + c["-"] == 2 and c["*"] == 1 and c["//"] == 0,
        4: lambda c: c["+"] + c["-"] == 2 and c["*"] == 1 and c["//"] == 1,
        5: lambda c: c["+"] + c["-"] == 3 and c["*"] == 1 and c["//"] == 1,
    }[level]
    for t in generate_arith(60, seed=3, difficulty=level):
        assert t.id.startswith(f"arith-L{level}-3-")
        assert t.meta["source"] == "arith" and t.meta["difficulty"] == level and t.meta["verifier"] == "math"
        assert t.prompt.endswith("Give the final answer as an integer.")
        assert expected(_n_ops(t.meta["expression"])), t.meta["expression"]
        q = t.meta["quantities"]
        # the gold is the exact integer value; true division gives the same number (exactness)
        value = eval(t.meta["expression"].replace("//", "/"), {}, dict(q))
        assert value == int(t.answer) and float(value).is_integer() and int(t.answer) > 0
        # every given number appears in the text (with thousands separators)
        for v in q.values():
            assert re.search(rf"(?<![\d,]){v:,}(?![\d,])", t.prompt), (v, t.prompt)
        lo = 10_000 if level == 5 else 500
        assert lo <= next(iter(q.values())) <= 99_999


def test_themes_vary():
    themes = {t.meta["theme"] for t in generate_arith(200, seed=0)}
    assert themes == set(THEME_NAMES)


def test_splits_are_disjoint_and_deterministic():
    train = generate_arith(400, seed=0, difficulty=[1, 2, 3, 4, 5], split="train")
    test = generate_arith(400, seed=0, difficulty=[1, 2, 3, 4, 5], split="test")
    val = generate_arith(100, seed=0, difficulty=[1, 2, 3, 4, 5], split="val")
    sig = lambda t: (t.meta["difficulty"], tuple(t.meta["quantities"].values()), t.meta["expression"].count("+"))  # noqa: E731
    assert not {sig(t) for t in train} & {sig(t) for t in test}
    assert not {t.prompt for t in train} & {t.prompt for t in test}
    assert not {t.id for t in train} & {t.id for t in test} and not {t.id for t in val} & {t.id for t in test}
    assert all(t.id.startswith("arith-test-") for t in test)
    # a test problem stays out of train under other seeds too: its arithmetic decides its split
    other = generate_arith(400, seed=99, difficulty=[1, 2, 3, 4, 5], split="train")
    assert not {sig(t) for t in other} & {sig(t) for t in test}
    assert [t.prompt for t in test[:10]] == [t.prompt for t in generate_arith(10, seed=0, split="test")]


def test_bad_arguments():
    with pytest.raises(ValueError, match="difficulty"):
        generate_arith(3, seed=0, difficulty=6)
    with pytest.raises(ValueError, match="split"):
        generate_arith(3, seed=0, split="dev")


@pytest.mark.parametrize("level", LEVELS)
def test_reference_solution_prints_gold(level):
    for t in generate_arith(40, seed=11, difficulty=level):
        script = reference_solution(t)
        assert isinstance(script, Script) and script.answer == t.answer
        assert 1 <= len(script.steps) <= 2
        assert len(script.steps) == (2 if t.meta["solution_split"] else 1)
        outputs = [_run(step.code) for step in script.steps]
        assert outputs[-1].strip().splitlines()[-1] == t.answer
        if len(outputs) == 2:  # the second step continues from what the first one printed
            printed = int(outputs[0].strip())
            assert f"= {printed}  # from the previous step" in script.steps[1].code
        assert all(s.thought and s.code for s in script.steps) and t.answer.isdigit()
        assert f"{int(t.answer):,}" in script.final_thought


def test_reference_solution_rejects_other_tasks():
    from tirl.types import Task

    with pytest.raises(ValueError, match="arith"):
        reference_solution(Task(id="x", prompt="p", answer="1", meta={"source": "champ"}))


def test_gold_self_test_all_levels():
    tasks = generate_arith(300, seed=5, difficulty=[1, 2, 3, 4, 5]) + generate_arith(50, seed=5, split="test")
    assert gold_self_test(tasks) == []
