"""Seeded multi-step arithmetic word problems, and their ideal tool-using solutions.

A problem follows one running quantity through a story (boxes in a warehouse, money in an
account, metres of trail, tickets, crates of apples, books to print). Each operation is one
sentence; multiplication converts the quantity into a finer unit (boxes -> cans) and division
into a coarser one (cans -> cartons), so every operation reads naturally. Difficulty levels:

====== ===================================================== ==========================
level  operations                                            numbers
====== ===================================================== ==========================
1      one + or -                                            3-4 digits
2      two of + / -                                          3-4 digits
3      three: two of + / -, one x                            3-4 digits, x 2..30
4      four: two of + / -, one x, one exact /                4 digits, x and / 2..36
5      five: three of + / -, one x, one exact /              4-5 digits, x and / 3..60
====== ===================================================== ==========================

Division is exact by construction: the divisor is drawn first and the operand of the + or -
just before the division is nudged so the running total is a multiple of it. Subtractions
never take more than three quarters of the running quantity, so every total stays positive.

Everything is a function of ``(split, seed, level, index)``: ``random.Random`` seeded with a
string (hashed with SHA-512 by CPython, stable across runs and machines). The split is a
function of the problem's arithmetic (start value and operations, not the story), through
``tirl.tasks.splits``: a problem is redrawn until it falls in the requested split, so train,
val and test problems never share the same arithmetic, whatever seeds are used.

``reference_solution(task)`` writes the ideal tool-using solution from ``task.meta`` (the named
quantities and the program, never by re-reading the text): one Python step, or two when the
problem has a multiplication (the second step continues from the printed intermediate).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from tirl.tasks.arith_themes import THEMES, Theme
from tirl.tasks.splits import check_split, split_of
from tirl.types import Script, ScriptStep, Task

LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
INSTRUCTION = "Give the final answer as an integer."

# per level: start value range, +/- operand range, x / / operand range
_START = {1: (1000, 9999), 2: (1000, 9999), 3: (500, 9999), 4: (1000, 9999), 5: (10000, 99999)}
_ADD = {1: (100, 9999), 2: (100, 9999), 3: (100, 9999), 4: (100, 9999), 5: (1000, 99999)}
_FACTOR = {3: (2, 30), 4: (2, 36), 5: (3, 60)}
_MAX_ATTEMPTS = 1000


@dataclass(frozen=True)
class _Op:
    kind: str  # "+", "-", "*", "/"
    value: int


def _op_plan(level: int, rng: random.Random) -> list[str]:
    """The operation kinds in order; x always comes before /, with a + or - in between."""
    pm = lambda k: [rng.choice("+-") for _ in range(k)]  # noqa: E731
    if level in (1, 2):
        return pm(level)
    if level == 3:
        k0 = rng.randint(0, 2)
        return pm(k0) + ["*"] + pm(2 - k0)
    n_pm = {4: 2, 5: 3}[level]
    k1 = rng.randint(1, n_pm)  # at least one + or - between x and /, to make / exact
    k0 = rng.randint(0, n_pm - k1)
    return pm(k0) + ["*"] + pm(k1) + ["/"] + pm(n_pm - k1 - k0)


def _draw_add(rng: random.Random, v: int, level: int) -> int:
    lo, hi = _ADD[level]
    hi = min(hi, max(2 * v, lo + 1))  # keep additions in proportion to the running total
    return rng.randint(lo, hi)


def _draw_sub(rng: random.Random, v: int, level: int) -> int | None:
    lo = max(2, min(_ADD[level][0], v // 5))
    hi = (3 * v) // 4
    return rng.randint(lo, hi) if hi >= lo else None


def _draw_ops(level: int, rng: random.Random) -> tuple[int, list[_Op]]:
    """Start value and operations with values; every intermediate total is a positive integer."""
    v = rng.randint(*_START[level])
    start = v
    plan = _op_plan(level, rng)
    ops: list[_Op] = []
    pending_divisor: int | None = None
    for j, kind in enumerate(plan):
        before_div = j + 1 < len(plan) and plan[j + 1] == "/"
        if kind in "+-":
            d = rng.randint(*_FACTOR[level]) if before_div else 1
            a = _draw_sub(rng, v, level) if kind == "-" else None
            if a is not None:
                a += (v - a) % d  # make v - a a multiple of d
                if v - a < d:
                    a = None
            if a is None:  # "+" was drawn, or the subtraction cannot stay positive
                kind = "+"
                a = _draw_add(rng, v, level)
                a += (-(v + a)) % d  # make v + a a multiple of d
            v = v + a if kind == "+" else v - a
            ops.append(_Op(kind, a))
            pending_divisor = d if before_div else None
        elif kind == "*":
            m = rng.randint(*_FACTOR[level])
            v *= m
            ops.append(_Op("*", m))
        else:
            assert pending_divisor is not None and v % pending_divisor == 0
            v //= pending_divisor
            ops.append(_Op("/", pending_divisor))
    return start, ops


def _signature(level: int, start: int, ops: list[_Op]) -> str:
    """The problem's arithmetic, independent of its story: what decides its split."""
    return f"arith|L{level}|{start}|" + "|".join(f"{o.kind}{o.value}" for o in ops)


def _evaluate(start: int, ops: list[_Op]) -> int:
    v = start
    for o in ops:
        if o.kind == "+":
            v += o.value
        elif o.kind == "-":
            v -= o.value
        elif o.kind == "*":
            v *= o.value
        else:
            if v % o.value:
                raise AssertionError("inexact division")  # unreachable by construction
            v //= o.value
    return v


def _render(theme: Theme, level: int, start: int, ops: list[_Op], rng: random.Random) -> tuple[str, dict]:
    """Prompt text and the solver's meta (quantities, program, answer variable)."""
    stage = 0
    units = theme.units
    sentences = [rng.choice(theme.start).format(q=units[0].say(start))]
    start_var = f"{units[0].var}_start"
    quantities: dict[str, int] = {start_var: start}
    # program: (target, expression) lines; one line per block of same-stage +/- and per x and /
    program: list[list[str]] = []
    current = start_var
    moment = 0
    block: list[str] = []
    used: set[str] = set()

    def flush() -> None:
        nonlocal current, block
        if block:
            target = units[stage].var
            program.append([target, " ".join([current, *block])])
            current = target
            block = []

    for o in ops:
        if o.kind in "+-":
            when, slug = theme.moments[moment]
            moment += 1
            options = theme.add[stage] if o.kind == "+" else theme.sub[stage]
            fresh = [opt for opt in options if opt[0] not in used] or list(options)
            template, stem = rng.choice(fresh)  # no sentence twice in one problem when avoidable
            used.add(template)
            sentences.append(template.format(when=when, q=units[stage].say(o.value)))
            name = f"{stem}_{slug}"
            quantities[name] = o.value
            block.append(f"{o.kind} {name}")
        elif o.kind == "*":
            flush()
            sentences.append(rng.choice(theme.mul).format(m=o.value))
            quantities[theme.mul_var] = o.value
            stage = 1
            program.append([units[stage].var, f"{current} * {theme.mul_var}"])
            current = units[stage].var
        else:
            flush()
            sentences.append(rng.choice(theme.div).format(d=o.value))
            quantities[theme.div_var] = o.value
            stage = 2
            program.append([units[stage].var, f"{current} // {theme.div_var}"])
            current = units[stage].var
    flush()
    sentences.append(theme.question[stage])
    sentences.append(INSTRUCTION)
    mul_line = next((i for i, (_, expr) in enumerate(program) if f"* {theme.mul_var}" in expr), None)
    meta = {
        "theme": theme.name,
        "quantities": quantities,
        "program": program,
        "answer_var": current,
        "answer_unit": units[stage].noun,
        "start_unit": units[0].noun,
        # the reference solution's first step ends after the multiplication (if more follows)
        "solution_split": None if mul_line is None or mul_line == len(program) - 1 else mul_line + 1,
    }
    return " ".join(sentences), meta


def task_id(level: int, seed: int, index: int, split: str) -> str:
    prefix = "arith" if split == "train" else f"arith-{split}"
    return f"{prefix}-L{level}-{seed}-{index}"


def make_arith_task(seed: int, index: int, level: int, split: str = "train") -> Task:
    """Problem ``index`` of difficulty ``level`` in the ``(split, seed)`` stream."""
    if level not in LEVELS:
        raise ValueError(f"arith difficulty must be one of {LEVELS}, got {level!r}")
    check_split(split, tuple(SPLIT_FRACTIONS))
    for attempt in range(_MAX_ATTEMPTS):
        rng = random.Random(f"arith|{split}|{seed}|{level}|{index}|{attempt}")
        start, ops = _draw_ops(level, rng)
        if split_of(_signature(level, start, ops), SPLIT_FRACTIONS) == split:
            break
    else:  # probability (1 - 0.1)^1000 ~ 1e-46
        raise RuntimeError(f"could not draw an arith problem for split {split!r}")
    theme = rng.choice(THEMES)
    prompt, meta = _render(theme, level, start, ops, rng)
    answer = _evaluate(start, ops)
    meta = {
        "source": "arith",
        "difficulty": level,
        "verifier": "math",
        "split": split,
        "expression": expression_of(meta["program"]),
        **meta,
    }
    return Task(id=task_id(level, seed, index, split), prompt=prompt, answer=str(answer), meta=meta)


def generate_arith(n: int, seed: int, difficulty: int | list[int] | tuple[int, ...] = LEVELS, split: str = "train", start: int = 0) -> list[Task]:
    """``n`` problems; with several levels, problem ``i`` has level ``levels[i % len(levels)]``."""
    levels = [difficulty] if isinstance(difficulty, int) else list(difficulty)
    if not levels or any(lv not in LEVELS for lv in levels):
        raise ValueError(f"arith difficulty must be a level or a list of levels from {LEVELS}, got {difficulty!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [make_arith_task(seed, i, levels[i % len(levels)], split) for i in range(start, start + n)]


def expression_of(program: list[list[str]]) -> str:
    """The program folded into one expression over the given quantities."""
    exprs: dict[str, str] = {}
    for target, rhs in program:
        tokens = [f"({exprs[t]})" if t in exprs else t for t in rhs.split()]
        exprs[target] = " ".join(tokens)
    return exprs[program[-1][0]]


# ---------------------------------------------------------------------------------------------
# Reference solver


def _fmt(n: int) -> str:
    return f"{n:,}"


def _names_in(expr: str, quantities: dict[str, int]) -> list[str]:
    return [name for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr) if name in quantities]


def _describe(expr: str, quantities: dict[str, int]) -> str:
    """``cans - dented_monday + returned_tuesday`` -> ``subtract 1,200, add 350`` (for a thought)."""
    words = {"+": "add", "-": "subtract", "*": "multiply by", "//": "divide by"}
    tokens = expr.split()
    phrases = [f"{words[op]} {_fmt(quantities[name])}" for op, name in zip(tokens[1::2], tokens[2::2], strict=True)]
    return ", ".join(phrases)


def _code(lines: list[list[str]], quantities: dict[str, int], carried: tuple[str, int] | None) -> str:
    """Assignments of the quantities the lines use (in first-use order), then the lines, then print."""
    out: list[str] = []
    if carried is not None:
        out.append(f"{carried[0]} = {carried[1]}  # from the previous step")
    seen: set[str] = set()
    for _, rhs in lines:
        for name in _names_in(rhs, quantities):
            if name not in seen:
                seen.add(name)
                out.append(f"{name} = {quantities[name]}")
    out.extend(f"{target} = {rhs}" for target, rhs in lines)
    out.append(f"print({lines[-1][0]})")
    return "\n".join(out)


_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "//": lambda a, b: a // b}


def _run_value(lines: list[list[str]], quantities: dict[str, int], carried: tuple[str, int] | None) -> int:
    """What the step's code prints, computed without executing it. Each line is a chain of + and
    - or a single * or //, so evaluating left to right follows Python's precedence."""
    env: dict[str, int] = dict(quantities)
    if carried is not None:
        env[carried[0]] = carried[1]
    for target, rhs in lines:
        tokens = rhs.split()
        value = env[tokens[0]]
        for op, name in zip(tokens[1::2], tokens[2::2], strict=True):
            value = _APPLY[op](value, env[name])
        env[target] = value
    return env[lines[-1][0]]


def reference_solution(task: Task) -> Script:
    """The ideal tool-using solution of an arith task: one or two Python steps, then the answer."""
    if task.meta.get("source") != "arith":
        raise ValueError(f"reference_solution needs an arith task, got {task.id!r} from {task.meta.get('source')!r}")
    q: dict[str, int] = task.meta["quantities"]
    program: list[list[str]] = task.meta["program"]
    split = task.meta["solution_split"]
    chunks = [program] if split is None else [program[:split], program[split:]]
    start_name = program[0][1].split()[0]
    steps: list[ScriptStep] = []
    carried: tuple[str, int] | None = None
    for k, lines in enumerate(chunks):
        ops = "; ".join(_describe(rhs, q) for _, rhs in lines)
        if k == 0:
            thought = f"I'll compute this in Python: start from {_fmt(q[start_name])} {task.meta['start_unit']}, then {ops}."
        else:
            assert carried is not None
            thought = f"That gives {_fmt(carried[1])}. Now continue from it: {ops}."
        steps.append(ScriptStep(thought=thought, code=_code(lines, q, carried)))
        value = _run_value(lines, q, carried)
        carried = (lines[-1][0], value)
    assert carried is not None
    answer = str(carried[1])
    if answer != task.answer:
        raise ValueError(f"task {task.id!r}: its program gives {answer}, its gold answer is {task.answer}")
    final = f"The result is {_fmt(carried[1])} {task.meta['answer_unit']}."
    return Script(steps=steps, final_thought=final, answer=answer)
