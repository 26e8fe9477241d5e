"""The lookup world rendered as an encyclopedia: one article per entity plus news items.

An entity's article states its facts in fixed sentences (``FACTS`` below), which the questions
cite as evidence: the reference solver's search must return the article that holds the sentence.
Articles are short (under 100 words, one passage at the search tool's default chunking).

Distractors, besides the shared name parts of the world itself:
- news items (``trade fair`` reports) that name two companies of one split, one company's
  founder and the other's headquarters and staff: true facts in an article about something
  else, which match the same query words as the entity's own article;
- people's articles name their birth city, companies' articles their founder and city, so a
  query for a name also finds the articles that merely mention it.

``corpus_path(seed)`` writes the corpus of ``default_world(seed)`` once, as JSONL
``{id, title, text}`` in tirl's cache, and returns its path: the search tool indexes it (and
caches that index by its content) when a run on ``lookup`` names no other corpus.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

from tirl.cache import cache_dir
from tirl.tasks.lookup.world import WORLD_VERSION, City, Company, Person, World, default_world

# the sentence that states each fact (the questions' evidence); keys are "<kind>.<attribute>"
FACTS = {
    "person.born": "{p.name} was born in {p.born} in {p.birth_city}.",
    "city.founded": "{c.name} was founded in {c.founded}.",
    "city.population": "{c.name} has a population of {c.population}.",
    "company.founded": "{x.name} was founded in {x.founded} by {x.founder}.",
    "company.hq": "{x.name} is headquartered in {x.hq}.",
    "company.employees": "{x.name} employs {x.employees} people.",
}


def fact(key: str, entity: Person | City | Company) -> str:
    return FACTS[key].format(p=entity, c=entity, x=entity)


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def person_article(p: Person) -> str:
    job = _a(p.profession)
    return f"{fact('person.born', p)} {p.surname} worked as {job} for most of their life. {p.name} is remembered in {p.birth_city} as {job}."


def city_article(c: City) -> str:
    return (
        f"{c.name} is a city in the {c.region} region. {fact('city.founded', c)} {fact('city.population', c)} {c.name} is known for its {c.feature}."
    )


def company_article(x: Company) -> str:
    return f"{x.name} is {_a(x.industry)} company. {fact('company.founded', x)} {fact('company.hq', x)} {fact('company.employees', x)}"


def news_articles(world: World) -> list[tuple[str, str, str]]:
    """(id, title, text) of the trade-fair reports: one per two companies, within a split."""
    rng = random.Random(f"lookup-news|v{WORLD_VERSION}|{world.seed}")
    out = []
    for split in ("train", "val", "test"):
        companies = sorted(world.in_split("companies", split), key=lambda x: x.name)
        rng.shuffle(companies)
        for i in range(0, len(companies) - 1, 2):
            a, b = companies[i], companies[i + 1]
            year = min(2024, max(a.founded, b.founded) + rng.randint(1, 15))
            title = f"{year} {b.hq} trade fair"
            text = (
                f"At the {year} trade fair in {b.hq}, {a.name} and {b.name} showed their newest products. "
                f"{a.name}, founded by {a.founder}, drew the largest crowd. "
                f"{b.name} employs {b.employees} people and has its headquarters in {b.hq}."
            )
            out.append((f"news/{split}/{i // 2}", title, text))
    return out


def articles(world: World) -> list[tuple[str, str, str]]:
    """Every document of the world's corpus as (id, title, text), in a fixed order."""
    docs = [(f"city/{c.name}", c.name, city_article(c)) for c in world.cities.values()]
    docs += [(f"person/{p.name}", p.name, person_article(p)) for p in world.people.values()]
    docs += [(f"company/{x.name}", x.name, company_article(x)) for x in world.companies.values()]
    return docs + news_articles(world)


def write_corpus(world: World, path: str | Path) -> Path:
    """The corpus as JSONL, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for doc_id, title, text in articles(world):
                f.write(json.dumps({"id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def corpus_path(seed: int) -> Path:
    """The corpus file of ``default_world(seed)``, written on first use."""
    path = cache_dir() / "lookup" / f"world-v{WORLD_VERSION}-seed{seed}.jsonl"
    if not path.is_file():
        write_corpus(default_world(seed), path)
    return path
