"""The lookup reference solver: the searches and the Python a question needs, as a ``Script``
that tirl executes with the real tools (``tirl.rollout.script.script_trajectory``), like
``arith``'s. Its trajectories serve SFT, E3-TIR's experts and AutoTraj's oracle repairer.

The script comes from the task's plan (``meta["hops"]``, ``meta["code"]``): one search per hop,
each thought saying what the previous search showed, then the Python that combines the facts
(levels 3-4), then the answer. ``check_trajectory`` holds the executed trajectory to the plan:
every search returned, among its passages, the article the plan relies on with the sentence
that states the fact, and the Python printed the gold. The self-test (tests/test_tasks_lookup.py)
runs it over hundreds of questions per level, so every gold is reachable through the search
tool's real results, not only in the generator's tables.
"""

from __future__ import annotations

import re

from tirl.types import Observation, Script, ScriptStep, Task, Trajectory

_DOC = re.compile(r"^Doc \d+ \(Title: (.*?)\) (.*)$")


def reference_solution(task: Task) -> Script:
    if task.meta.get("source") != "lookup":
        raise ValueError(f"the lookup reference solver needs a lookup task, got {task.id!r} from {task.meta.get('source')!r}")
    hops = task.meta["hops"]
    steps: list[ScriptStep] = []
    learned = ""
    for k, hop in enumerate(hops):
        lead = "I need to look this up." if k == 0 else f"{learned} Next I look up {hop['title']}."
        steps.append(ScriptStep(thought=lead, code=hop["query"], tool="search"))
        learned = f"The search shows that {hop['note']}"
    code = task.meta.get("code")
    if code is not None:
        steps.append(ScriptStep(thought=f"{learned} Now I combine the facts in Python.", code=code, tool="python"))
        final = f"The computation gives {task.answer}."
    else:
        final = f"{learned} So the answer is {task.answer}."
    return Script(steps=steps, final_thought=final, answer=str(task.answer))


def passages(observation_text: str) -> list[tuple[str, str]]:
    """(title, text) of each passage in a search observation."""
    return [(m.group(1), m.group(2)) for line in observation_text.splitlines() if (m := _DOC.match(line))]


def _holds(hop: dict, found: list[tuple[str, str]]) -> bool:
    return any(title == hop["title"] and all(e in text for e in hop["evidence"]) for title, text in found)


def found_needed(task: Task, obs: Observation | None) -> bool:
    """Whether a search observation shows an article the task's plan needs, with the sentences
    that hold its fact (the evaluation's "searches that found a needed article")."""
    if obs is None or not obs.ok:
        return False
    found = passages(obs.output)
    return any(_holds(hop, found) for hop in task.meta.get("hops", []))


def check_trajectory(task: Task, traj: Trajectory) -> str | None:
    """None when the executed reference trajectory followed its plan on real results, else what
    went wrong (a search that missed its article, a Python step that printed something else)."""
    hops = task.meta["hops"]
    calls = [s for s in traj.steps if s.call is not None]
    searches = [s for s in calls if s.call.name == "search"]
    if len(searches) != len(hops):
        return f"{len(searches)} searches ran, the plan has {len(hops)}"
    for k, (step, hop) in enumerate(zip(searches, hops)):
        obs = step.observation
        if obs is None or not obs.ok:
            return f"search {k + 1} ({hop['query']!r}) failed: {obs.output if obs else 'no observation'}"
        found = passages(obs.output)
        if not _holds(hop, found):
            return (
                f"search {k + 1} ({hop['query']!r}) did not return the article {hop['title']!r} with {hop['evidence']!r}; got {[t for t, _ in found]}"
            )
    python = [s for s in calls if s.call.name == "python"]
    if task.meta.get("code") is not None:
        if len(python) != 1 or python[0].observation is None or python[0].observation.output.strip() != str(task.answer):
            got = python[0].observation.output.strip() if python and python[0].observation else None
            return f"the Python step printed {got!r}, the gold is {task.answer!r}"
    if traj.answer != str(task.answer):
        return f"the trajectory answered {traj.answer!r}, the gold is {task.answer!r}"
    return None
