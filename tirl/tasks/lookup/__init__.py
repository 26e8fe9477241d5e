"""``lookup``: multi-hop questions about a seeded fictional world, answered with the search tool
and Python (docs/DESIGN.md, "Search and multi-call tasks"). ``world`` generates the world,
``corpus`` renders it as an encyclopedia with distractors, ``questions`` poses questions in four
levels with disjoint train/val/test entities, ``solver`` is the reference solver."""

from tirl.tasks.lookup.corpus import articles, corpus_path, write_corpus
from tirl.tasks.lookup.questions import LEVELS, generate_lookup, make_lookup_task
from tirl.tasks.lookup.solver import check_trajectory, reference_solution
from tirl.tasks.lookup.world import World, default_world, generate_world

__all__ = [
    "LEVELS",
    "World",
    "articles",
    "check_trajectory",
    "corpus_path",
    "default_world",
    "generate_lookup",
    "generate_world",
    "make_lookup_task",
    "reference_solution",
    "write_corpus",
]
