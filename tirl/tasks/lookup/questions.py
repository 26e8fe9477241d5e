"""Questions about the lookup world, in four levels, with the plan that answers each.

====== ============================================================ ==========================
level  what it takes                                                 tool calls of the solver
====== ============================================================ ==========================
1      one fact ("In which year was Veltrax Labs founded?")          1 search
2      a two-hop bridge ("In which year was the founder of           2 searches
       Veltrax Labs born?")
3      two facts combined with Python (a difference, a sum, a       2 searches + Python
       comparison)
4      three hops plus a computation                                 3-4 searches + Python
====== ============================================================ ==========================

A question is drawn from its split's entities only (``world.py``: relations never cross
splits), so train, val and test questions never share a target entity, nor any entity on the
way to the answer. Each task's ``meta`` carries the plan (``hops``: the query, the article
that answers it and the sentence in it; ``compute``: the Python that combines the facts), which
the reference solver executes and its self-test checks against the real search results.

Everything is a function of ``(seed, split, level, index)``, as for ``arith``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tirl.tasks.lookup.corpus import fact
from tirl.tasks.lookup.world import City, Company, Person, World
from tirl.tasks.splits import check_split
from tirl.types import Task

LEVELS: tuple[int, ...] = (1, 2, 3, 4)
CONTEXT = "This question is about a fictional world: search its encyclopedia instead of answering from memory."
INSTRUCTION = {"number": "Give the final answer as an integer.", "name": "Give the final answer as a name only."}


@dataclass(frozen=True)
class Hop:
    """One search: the query, the article title that answers it, the sentence that holds the fact."""

    query: str
    title: str
    evidence: tuple[str, ...]  # the sentences of the article the next steps use
    note: str  # what the solver learns, for its thought ("Veltrax Labs was founded by Ana Voss")


@dataclass(frozen=True)
class Plan:
    question: str
    answer: str
    kind: str  # "number" (math verifier) or "name" (QA F1)
    targets: tuple[str, ...]  # the entities the question names
    hops: tuple[Hop, ...]
    code: str | None = None  # Python that prints the answer from the facts found


# -- hops: one per fact --------------------------------------------------------------------
def _born(p: Person) -> Hop:
    return Hop(f"When was {p.name} born", p.name, (fact("person.born", p),), f"{p.name} was born in {p.born} in {p.birth_city}.")


def _founded(x: Company) -> Hop:
    return Hop(f"Who founded {x.name}", x.name, (fact("company.founded", x),), f"{x.name} was founded in {x.founded} by {x.founder}.")


def _hq(x: Company) -> Hop:
    return Hop(f"Where is {x.name} headquartered", x.name, (fact("company.hq", x),), f"{x.name} is headquartered in {x.hq}.")


def _employees(x: Company) -> Hop:
    return Hop(f"How many people does {x.name} employ", x.name, (fact("company.employees", x),), f"{x.name} employs {x.employees} people.")


def _city_pop(c: City) -> Hop:
    return Hop(f"Population of {c.name}", c.name, (fact("city.population", c),), f"{c.name} has {c.population} inhabitants.")


def _city_year(c: City) -> Hop:
    return Hop(f"When was {c.name} founded", c.name, (fact("city.founded", c),), f"{c.name} was founded in {c.founded}.")


def _company(x: Company) -> Hop:
    """The founder and the headquarters at once: both are in the company's article."""
    return Hop(
        f"Who founded {x.name} and where is it headquartered",
        x.name,
        (fact("company.founded", x), fact("company.hq", x)),
        f"{x.name} was founded by {x.founder} and is headquartered in {x.hq}.",
    )


def _code(assign: list[tuple[str, int]], expr: str) -> str:
    return "\n".join([*(f"{name} = {value}" for name, value in assign), f"print({expr})"])


# -- templates: (rng, world, split) -> Plan | None (None: this split cannot pose it) ------------
def _pick(rng: random.Random, pool: list, k: int = 1) -> list | None:
    return rng.sample(pool, k) if len(pool) >= k else None


def _l1(rng: random.Random, w: World, s: str) -> Plan | None:
    kind = rng.choice(["person.born", "person.city", "company.founder", "company.year", "company.hq", "company.employees", "city.pop", "city.year"])
    if kind.startswith("person"):
        (p,) = _pick(rng, w.in_split("people", s))
        if kind == "person.born":
            return Plan(f"In which year was {p.name} born?", str(p.born), "number", (p.name,), (_born(p),))
        return Plan(f"In which city was {p.name} born?", p.birth_city, "name", (p.name,), (_born(p),))
    if kind.startswith("company"):
        (x,) = _pick(rng, w.in_split("companies", s))
        if kind == "company.founder":
            return Plan(f"Who founded {x.name}?", x.founder, "name", (x.name,), (_founded(x),))
        if kind == "company.year":
            return Plan(f"In which year was {x.name} founded?", str(x.founded), "number", (x.name,), (_founded(x),))
        if kind == "company.hq":
            return Plan(f"In which city is {x.name} headquartered?", x.hq, "name", (x.name,), (_hq(x),))
        return Plan(f"How many people does {x.name} employ?", str(x.employees), "number", (x.name,), (_employees(x),))
    (c,) = _pick(rng, w.in_split("cities", s))
    if kind == "city.pop":
        return Plan(f"What is the population of {c.name}?", str(c.population), "number", (c.name,), (_city_pop(c),))
    return Plan(f"In which year was the city of {c.name} founded?", str(c.founded), "number", (c.name,), (_city_year(c),))


def _l2(rng: random.Random, w: World, s: str) -> Plan | None:
    kind = rng.choice(["founder.born", "founder.city", "hq.pop", "hq.year", "birthplace.pop"])
    if kind == "birthplace.pop":
        (p,) = _pick(rng, w.in_split("people", s))
        c = w.cities[p.birth_city]
        return Plan(f"What is the population of the city where {p.name} was born?", str(c.population), "number", (p.name,), (_born(p), _city_pop(c)))
    (x,) = _pick(rng, w.in_split("companies", s))
    if kind.startswith("founder"):
        p = w.people[x.founder]
        if kind == "founder.born":
            return Plan(f"In which year was the founder of {x.name} born?", str(p.born), "number", (x.name,), (_founded(x), _born(p)))
        return Plan(f"In which city was the founder of {x.name} born?", p.birth_city, "name", (x.name,), (_founded(x), _born(p)))
    c = w.cities[x.hq]
    if kind == "hq.pop":
        return Plan(
            f"What is the population of the city where {x.name} is headquartered?", str(c.population), "number", (x.name,), (_hq(x), _city_pop(c))
        )
    return Plan(f"In which year was the city where {x.name} is headquartered founded?", str(c.founded), "number", (x.name,), (_hq(x), _city_year(c)))


def _l3(rng: random.Random, w: World, s: str) -> Plan | None:
    kind = rng.choice(["age_gap", "pop_sum", "staff_gap", "earlier", "founder_age"])
    if kind == "age_gap":
        pair = _pick(rng, w.in_split("people", s), 2)
        if pair is None or pair[0].born == pair[1].born:
            return None
        old, young = sorted(pair, key=lambda p: p.born)
        a, b = (old, young) if rng.random() < 0.5 else (young, old)  # mention order says nothing
        code = _code([("born_older", old.born), ("born_younger", young.born)], "born_younger - born_older")
        return Plan(
            f"How many years older is {old.name} than {young.name}?",
            str(young.born - old.born),
            "number",
            (old.name, young.name),
            (_born(a), _born(b)),
            code,
        )
    if kind == "pop_sum":
        pair = _pick(rng, w.in_split("cities", s), 2)
        if pair is None:
            return None
        a, b = pair
        code = _code([("population_a", a.population), ("population_b", b.population)], "population_a + population_b")
        return Plan(
            f"What is the combined population of {a.name} and {b.name}?",
            str(a.population + b.population),
            "number",
            (a.name, b.name),
            (_city_pop(a), _city_pop(b)),
            code,
        )
    pair = _pick(rng, w.in_split("companies", s), 2)
    if pair is None:
        return None
    a, b = pair
    if kind == "staff_gap":
        if a.employees == b.employees:
            return None
        big, small = sorted(pair, key=lambda x: -x.employees)
        code = _code([("staff_big", big.employees), ("staff_small", small.employees)], "staff_big - staff_small")
        return Plan(
            f"How many more people does {big.name} employ than {small.name}?",
            str(big.employees - small.employees),
            "number",
            (big.name, small.name),
            (_employees(a), _employees(b)),
            code,
        )
    if kind == "earlier":
        if a.founded == b.founded:
            return None
        first = min(pair, key=lambda x: x.founded)
        code = "\n".join(
            [
                f"founded_a = {a.founded}  # {a.name}",
                f"founded_b = {b.founded}  # {b.name}",
                f"print({a.name!r} if founded_a < founded_b else {b.name!r})",
            ]
        )
        return Plan(
            f"Which company was founded earlier, {a.name} or {b.name}?", first.name, "name", (a.name, b.name), (_founded(a), _founded(b)), code
        )
    p = w.people[a.founder]
    code = _code([("founded", a.founded), ("born", p.born)], "founded - born")
    return Plan(
        f"How old was {p.name} when {a.name} was founded?", str(a.founded - p.born), "number", (p.name, a.name), (_founded(a), _born(p)), code
    )


def _l4(rng: random.Random, w: World, s: str) -> Plan | None:
    kind = rng.choice(["birthplace_to_company", "hq_city_to_founder", "pop_gap"])
    (x,) = _pick(rng, w.in_split("companies", s))
    p = w.people[x.founder]
    birth, hq = w.cities[p.birth_city], w.cities[x.hq]
    if kind == "birthplace_to_company":
        code = _code([("company_founded", x.founded), ("city_founded", birth.founded)], "company_founded - city_founded")
        return Plan(
            f"How many years after the founding of the city where the founder of {x.name} was born was {x.name} founded?",
            str(x.founded - birth.founded),
            "number",
            (x.name,),
            (_founded(x), _born(p), _city_year(birth)),
            code,
        )
    if kind == "hq_city_to_founder":
        code = _code([("founder_born", p.born), ("city_founded", hq.founded)], "founder_born - city_founded")
        return Plan(
            f"How many years after the founding of the city where {x.name} is headquartered was the founder of {x.name} born?",
            str(p.born - hq.founded),
            "number",
            (x.name,),
            (_company(x), _city_year(hq), _born(p)),
            code,
        )
    if birth.name == hq.name:
        return None
    code = _code([("population_hq", hq.population), ("population_birthplace", birth.population)], "abs(population_hq - population_birthplace)")
    return Plan(
        f"What is the difference between the population of the city where {x.name} is headquartered and the population of the city where its founder was born?",
        str(abs(hq.population - birth.population)),
        "number",
        (x.name,),
        (_company(x), _city_pop(hq), _born(p), _city_pop(birth)),
        code,
    )


TEMPLATES: dict[int, Callable[[random.Random, World, str], Plan | None]] = {1: _l1, 2: _l2, 3: _l3, 4: _l4}
_MAX_ATTEMPTS = 200


def task_id(level: int, seed: int, index: int, split: str) -> str:
    prefix = "lookup" if split == "train" else f"lookup-{split}"
    return f"{prefix}-L{level}-{seed}-{index}"


def make_lookup_task(world: World, index: int, level: int, split: str = "train") -> Task:
    """Question ``index`` of ``level`` in the ``(split, world seed)`` stream."""
    if level not in LEVELS:
        raise ValueError(f"lookup difficulty must be one of {LEVELS}, got {level!r}")
    check_split(split)
    for attempt in range(_MAX_ATTEMPTS):
        plan = TEMPLATES[level](random.Random(f"lookup|{split}|{world.seed}|{level}|{index}|{attempt}"), world, split)
        if plan is not None:
            break
    else:
        raise RuntimeError(f"the lookup world has too few {split} entities for level {level}")
    prompt = f"{plan.question} {CONTEXT} {INSTRUCTION[plan.kind]}"
    meta = {
        "source": "lookup",
        "difficulty": level,
        "verifier": "math" if plan.kind == "number" else "qa",
        "split": split,
        "world_seed": world.seed,
        "question": plan.question,
        "targets": list(plan.targets),
        "hops": [{"query": h.query, "title": h.title, "evidence": list(h.evidence), "note": h.note} for h in plan.hops],
        "code": plan.code,
    }
    return Task(id=task_id(level, world.seed, index, split), prompt=prompt, answer=plan.answer, meta=meta)


def generate_lookup(n: int, world: World, difficulty: int | list[int] | tuple[int, ...] = LEVELS, split: str = "train", start: int = 0) -> list[Task]:
    """``n`` questions; with several levels, question ``i`` has level ``levels[i % len(levels)]``."""
    levels = [difficulty] if isinstance(difficulty, int) else list(difficulty)
    if not levels or any(lv not in LEVELS for lv in levels):
        raise ValueError(f"lookup difficulty must be a level or a list of levels from {LEVELS}, got {difficulty!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [make_lookup_task(world, i, levels[i % len(levels)], split) for i in range(start, start + n)]
