"""A seeded fictional world: cities, people and companies with attributes and relations.

Every name is made of invented syllables, so no model knows a fact about it from pre-training:
answering needs the search tool. Names share parts on purpose, the distractors BM25 and the model
must see past: a surname is shared by a family of people (Ana Voss, Leo Voss), a company stem by
two or three companies (Veltrax Labs, Veltrax Motors), a city name by a ``Port``/``North``/...
variant (Kessel, Port Kessel). Full names are unique.

Relations: a person was born in a city; a company was founded by a person and is headquartered in
a city. Each entity belongs to one split (train 80%, val 10%, test 10%, by the rank of a hash of
its name, so the fractions are exact and the assignment does not depend on generation order),
and relations never cross splits: a test question's whole chain of entities is test-only.

Everything is a function of the seed (``random.Random`` seeded with a string); ``WORLD_VERSION``
changes whenever the generator does, so a cached corpus of an older world is never reused.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass, field

from tirl.tasks.splits import SPLITS

WORLD_VERSION = 1
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}

N_CITIES, N_PEOPLE, N_COMPANIES = 90, 600, 360

_ONSETS = "b br d dr f g gr h k kr l m n p pr r s st t tr v z th sh".split()
_VOWELS = "a e i o u ae ia".split()
_CODAS = ["", "n", "r", "l", "s", "th", "x", "m", "nd", "rk", "lt", "sk"]
_CITY_VARIANTS = ("Port {}", "North {}", "{} Falls", "New {}", "{} Bay")
_COMPANY_KINDS = (
    "Labs",
    "Systems",
    "Foods",
    "Motors",
    "Textiles",
    "Works",
    "Press",
    "Shipping",
    "Mining",
    "Pharma",
    "Brewing",
    "Robotics",
    "Software",
    "Airlines",
    "Instruments",
)
_INDUSTRY = {
    "Labs": "research",
    "Systems": "engineering",
    "Foods": "food",
    "Motors": "car",
    "Textiles": "textile",
    "Works": "steel",
    "Press": "publishing",
    "Shipping": "shipping",
    "Mining": "mining",
    "Pharma": "pharmaceutical",
    "Brewing": "brewing",
    "Robotics": "robotics",
    "Software": "software",
    "Airlines": "airline",
    "Instruments": "instrument",
}
PROFESSIONS = ("engineer", "chemist", "architect", "banker", "painter", "surgeon", "teacher", "pilot", "lawyer", "economist", "geologist", "composer")
REGIONS = ("northern", "southern", "eastern", "western", "central", "coastal")
FEATURES = ("old harbour", "stone bridges", "spring festival", "botanical garden", "clock tower", "river markets", "glass museum", "salt mines")


@dataclass(frozen=True)
class City:
    name: str
    split: str
    founded: int
    population: int
    region: str
    feature: str


@dataclass(frozen=True)
class Person:
    name: str
    split: str
    born: int
    birth_city: str
    profession: str

    @property
    def surname(self) -> str:
        return self.name.split()[-1]


@dataclass(frozen=True)
class Company:
    name: str
    split: str
    founded: int
    founder: str
    hq: str
    employees: int

    @property
    def industry(self) -> str:
        return _INDUSTRY[self.name.split()[-1]]


@dataclass
class World:
    seed: int
    cities: dict[str, City] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)
    companies: dict[str, Company] = field(default_factory=dict)

    def in_split(self, kind: str, split: str) -> list:
        return [e for e in getattr(self, kind).values() if e.split == split]


def _word(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)]
    return "".join(parts).capitalize()


def _words(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    """``n`` new invented words of 2-3 syllables (4-8 letters), none in ``taken``."""
    out: list[str] = []
    while len(out) < n:
        w = _word(rng, rng.choice((2, 2, 2, 3)))
        if 4 <= len(w) <= 8 and w not in taken:
            taken.add(w)
            out.append(w)
    return out


def _splits(seed: int, kind: str, names: list[str]) -> dict[str, str]:
    """Split of each name: by the rank of its hash, so each split gets its exact fraction."""
    ranked = sorted(names, key=lambda n: hashlib.sha256(f"lookup|{seed}|{kind}|{n}".encode()).hexdigest())
    out, start = {}, 0
    for i, (split, frac) in enumerate(SPLIT_FRACTIONS.items()):
        end = len(ranked) if i == len(SPLIT_FRACTIONS) - 1 else start + round(frac * len(ranked))
        out.update((n, split) for n in ranked[start:end])
        start = end
    return out


def generate_world(seed: int, n_cities: int = N_CITIES, n_people: int = N_PEOPLE, n_companies: int = N_COMPANIES) -> World:
    if min(n_cities, n_people, n_companies) < 6 * len(SPLITS):
        raise ValueError("a lookup world needs at least 18 entities of each kind (a few per split)")
    rng = random.Random(f"lookup-world|v{WORLD_VERSION}|{seed}")
    taken: set[str] = set()
    world = World(seed=seed)

    # cities: a base word each; about a third of the bases get a variant city too (Kessel, Port Kessel)
    bases = _words(rng, n_cities, taken)
    city_names: list[str] = []
    for b in bases:
        if len(city_names) >= n_cities:
            break
        city_names.append(b)
        if rng.random() < 0.35 and len(city_names) < n_cities:
            city_names.append(rng.choice(_CITY_VARIANTS).format(b))
    city_split = _splits(seed, "city", city_names)
    for name in city_names:
        world.cities[name] = City(
            name, city_split[name], rng.randint(1150, 1890), rng.randint(4000, 950000), rng.choice(REGIONS), rng.choice(FEATURES)
        )
    cities_by_split = {s: [c.name for c in world.in_split("cities", s)] for s in SPLITS}

    # people: few first names, families of surnames, unique full names
    firsts = _words(rng, max(8, n_people // 12), taken)
    surnames = _words(rng, max(8, n_people // 3), taken)
    person_names: list[str] = []
    seen: set[str] = set()
    while len(person_names) < n_people:
        name = f"{rng.choice(firsts)} {rng.choice(surnames)}"
        if name not in seen:
            seen.add(name)
            person_names.append(name)
    person_split = _splits(seed, "person", person_names)
    for name in person_names:
        s = person_split[name]
        world.people[name] = Person(name, s, rng.randint(1900, 1985), rng.choice(cities_by_split[s]), rng.choice(PROFESSIONS))
    people_by_split = {s: [p.name for p in world.in_split("people", s)] for s in SPLITS}

    # companies: stems shared by up to three companies of different kinds
    stems = _words(rng, max(8, n_companies // 2), taken)
    company_names: list[str] = []
    seen = set()
    while len(company_names) < n_companies:
        name = f"{rng.choice(stems)} {rng.choice(_COMPANY_KINDS)}"
        if name not in seen:
            seen.add(name)
            company_names.append(name)
    company_split = _splits(seed, "company", company_names)
    for name in company_names:
        s = company_split[name]
        founder = world.people[rng.choice(people_by_split[s])]
        founded = rng.randint(founder.born + 22, min(founder.born + 60, 2020))
        world.companies[name] = Company(name, s, founded, founder.name, rng.choice(cities_by_split[s]), rng.randint(40, 90000))
    return world


@functools.lru_cache(maxsize=4)
def default_world(seed: int) -> World:
    """The world of ``task.name=lookup`` for a seed (cached: every task of a run reads it)."""
    return generate_world(seed)
