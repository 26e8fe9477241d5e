"""The lookup task: a deterministic world and questions per seed, splits that never share an
entity, levels of the stated shape, golds the verifiers accept, and the reference solver reaching
every gold through the real search tool and the real Python sandbox (the self-test: a sample
of each level here, >= 200 per level in the slow test)."""

from __future__ import annotations

import asyncio

import pytest

from tirl.protocol import make_protocol
from tirl.rewards.outcome import gold_self_test
from tirl.rollout.script import script_trajectory
from tirl.tasks import TaskLoadError, load_tasks
from tirl.tasks.lookup import LEVELS, articles, check_trajectory, default_world, generate_lookup, generate_world, reference_solution, write_corpus
from tirl.tools import PythonSandbox, SandboxConfig
from tirl.tools.search import SearchConfig, SearchTool


def _entities(task) -> set[str]:
    """Every entity on the task's chain: those it names and every article its plan reads."""
    return set(task.meta["targets"]) | {h["title"] for h in task.meta["hops"]}


def test_world_and_questions_are_deterministic_per_seed():
    a, b = generate_world(5), generate_world(5)
    assert a.cities == b.cities and a.people == b.people and a.companies == b.companies
    assert articles(a) == articles(b)
    qa = load_tasks("lookup", n=40, seed=5, split="train")
    qb = load_tasks("lookup", n=40, seed=5, split="train")
    assert [(t.id, t.prompt, t.answer, t.meta) for t in qa] == [(t.id, t.prompt, t.answer, t.meta) for t in qb]
    # a question does not depend on the ones generated before it
    one = load_tasks("lookup", n=1, seed=5, split="train", start=13, difficulty=LEVELS)
    assert (one[0].id, one[0].prompt, one[0].answer) == (qa[13].id, qa[13].prompt, qa[13].answer)
    assert set(generate_world(6).people).isdisjoint(a.people)


def test_splits_never_share_an_entity():
    world = default_world(0)
    by_split = {s: generate_lookup(300, world, split=s) for s in ("train", "val", "test")}
    seen = {s: set().union(*(_entities(t) for t in ts)) for s, ts in by_split.items()}
    assert not seen["train"] & seen["val"] and not seen["train"] & seen["test"] and not seen["val"] & seen["test"]
    for s, ts in by_split.items():
        assert all(t.meta["split"] == s and (s == "train") == t.id.startswith("lookup-L") for t in ts)
    # the world's relations stay inside a split, so a chain never leaves it
    for x in world.companies.values():
        assert world.people[x.founder].split == x.split == world.cities[x.hq].split
    for p in world.people.values():
        assert world.cities[p.birth_city].split == p.split


def test_levels_have_the_stated_shape():
    tasks = load_tasks("lookup", n=200, seed=0, split="train")
    for t in tasks:
        level, hops, code = t.meta["difficulty"], t.meta["hops"], t.meta["code"]
        assert t.meta["source"] == "lookup" and t.meta["verifier"] in ("math", "qa")
        assert t.meta["question"] in t.prompt and "fictional world" in t.prompt
        assert str(t.answer) not in t.meta["question"] or t.meta["verifier"] == "qa"
        if level == 1:
            assert len(hops) == 1 and code is None
        elif level == 2:
            assert len(hops) == 2 and code is None and hops[0]["title"] != hops[1]["title"]
        elif level == 3:
            assert len(hops) == 2 and code is not None
        else:
            assert len(hops) >= 3 and code is not None
    assert {t.meta["difficulty"] for t in tasks} == set(LEVELS)
    assert {t.meta["verifier"] for t in tasks} == {"math", "qa"}


def test_every_gold_passes_its_verifier():
    tasks = load_tasks("lookup", n=400, seed=1, split="train") + load_tasks("lookup", n=100, seed=1, split="test")
    assert gold_self_test(tasks) == []


def test_registry_options_and_errors():
    assert {t.meta["difficulty"] for t in load_tasks("lookup", n=12, seed=0, difficulty=[2, 3])} == {2, 3}
    with pytest.raises(TaskLoadError, match="pass n"):
        load_tasks("lookup", seed=0)
    with pytest.raises(TaskLoadError, match="difficulty"):
        load_tasks("lookup", n=2, seed=0, difficulty=5)
    with pytest.raises(TaskLoadError, match="unknown option"):
        load_tasks("lookup", n=2, seed=0, size=3)
    with pytest.raises(TaskLoadError, match="unknown split"):
        load_tasks("lookup", n=2, seed=0, split="dev")


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    d = tmp_path_factory.mktemp("lookup")
    corpus = write_corpus(default_world(0), d / "corpus.jsonl")
    search = SearchTool(SearchConfig(corpus=str(corpus), cache_dir=str(d / "cache")), show_progress=False)
    sandbox = PythonSandbox(SandboxConfig(workers=1))
    yield sandbox, search
    asyncio.run(sandbox.aclose())


def _self_test(tasks, protocol, tokenizer) -> list[str]:
    async def go():
        failures = []
        for t in tasks:
            tr = await script_trajectory(t, reference_solution(t), protocol, tokenizer)
            if (err := check_trajectory(t, tr)) is not None:
                failures.append(f"{t.id}: {err}")
        return failures

    return asyncio.run(go())


@pytest.mark.parametrize("protocol", ["tag", "hermes"])
def test_reference_solver_reaches_the_gold_through_real_search(tools, tiny, protocol):
    proto = make_protocol(protocol, list(tools), tiny.tokenizer)
    tasks = [t for s in ("train", "test") for lv in LEVELS for t in load_tasks("lookup", n=25, seed=0, split=s, difficulty=lv)]
    assert _self_test(tasks, proto, tiny.tokenizer) == []


@pytest.mark.slow
def test_reference_solver_self_test_200_per_level(tools, tiny):
    proto = make_protocol("tag", list(tools), tiny.tokenizer)
    tasks = [t for s in ("train", "test") for lv in LEVELS for t in load_tasks("lookup", n=200, seed=0, split=s, difficulty=lv)]
    assert _self_test(tasks, proto, tiny.tokenizer) == []


def test_check_catches_a_search_that_missed(tools, tiny):
    """The self-test can fail: against a corpus without the answer's article, the check says so."""
    sandbox, search = tools
    proto = make_protocol("tag", [sandbox, search], tiny.tokenizer)
    (task,) = load_tasks("lookup", n=1, seed=0, split="train", difficulty=2)
    broken = dict(task.meta)
    broken["hops"] = [dict(h) for h in task.meta["hops"]]
    broken["hops"][1]["evidence"] = ["a sentence no article holds."]
    task = type(task)(id=task.id, prompt=task.prompt, answer=task.answer, meta=broken)
    (err,) = _self_test([task], proto, tiny.tokenizer)
    assert "did not return the article" in err


def test_reference_trajectories_for_sft_and_the_multi_tool_bonus(tools, tiny):
    from tirl.rewards.efficiency import multi_tool_bonus
    from tirl.rollout.experts import ReferenceExperts
    from tirl.train.sft import reference_trajectories

    proto = make_protocol("tag", list(tools), tiny.tokenizer)
    tasks = load_tasks("lookup", n=8, seed=0, split="train", difficulty=[1, 2, 3, 4])
    trajs = asyncio.run(reference_trajectories(tasks, proto, tiny.tokenizer))
    assert len(trajs) == 8
    calls = [[s.call.name for s in tr.steps if s.call] for tr in trajs]
    assert calls[0] == ["search"] and calls[1] == ["search", "search"] and calls[2] == ["search", "search", "python"]
    assert calls[3][-1] == "python" and calls[3].count("search") >= 3
    # Tool-Star's bonus: a correct answer that used search and python (levels 3-4)
    bonus = multi_tool_bonus(0.1)
    assert [bonus([tr], task)[0] for tr, task in zip(trajs, tasks)] == [0.0, 0.0, 0.1, 0.1, 0.0, 0.0, 0.1, 0.1]
    experts = asyncio.run(ReferenceExperts().solve(tasks[:2], proto, tiny.tokenizer))
    assert all(e is not None and e.answer == t.answer for e, t in zip(experts, tasks))


def test_reference_needs_the_search_tool(tiny):
    from tirl.errors import UserError

    proto = make_protocol("tag", [PythonSandbox(SandboxConfig(workers=1))], tiny.tokenizer)
    (task,) = load_tasks("lookup", n=1, seed=0)
    try:
        with pytest.raises(UserError, match="calls the 'search' tool, which this run does not offer"):
            asyncio.run(script_trajectory(task, reference_solution(task), proto, tiny.tokenizer))
    finally:
        asyncio.run(proto.tools["python"].aclose())


def test_lookup_recipe_loads_and_rollout_cli_runs(tmp_path, tiny):
    import json

    from typer.testing import CliRunner

    from tirl.cli.main import app
    from tirl.config import load_config

    cfg = load_config("lookup")
    assert cfg.task.name == "lookup" and cfg.tools.search and cfg.tools.python and cfg.train.sft_first
    assert cfg.sft.source == "reference" and cfg.reward.multi_tool_bonus > 0
    res = CliRunner().invoke(
        app,
        [
            "rollout",
            "--model",
            "tiny-random",
            "--task",
            "lookup",
            "--n-tasks",
            "2",
            "--group-size",
            "2",
            "--max-response-tokens",
            "16",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["task_id"].startswith("lookup-test-") for r in rows)


def test_eval_reports_calls_by_tool_and_searches_that_found_a_needed_article(tools, tiny):
    import copy

    from tirl.eval.runner import summarize_eval
    from tirl.train.sft import reference_trajectories
    from tirl.types import Observation

    proto = make_protocol("tag", list(tools), tiny.tokenizer)
    tasks = load_tasks("lookup", n=4, seed=0, split="test", difficulty=[1, 2, 3, 4])
    trajs = asyncio.run(reference_trajectories(tasks, proto, tiny.tokenizer))
    report = summarize_eval(tasks, [[t] for t in trajs], proto, n_samples=1)
    n_search = sum(len(t.meta["hops"]) for t in tasks)
    assert report.accuracy == 1.0 and report.search_hit_rate == 1.0
    assert report.tool_calls_by_tool == {"python": 2 / 4, "search": n_search / 4}
    assert report.scalars()["tool_calls/search"] == n_search / 4
    assert ("searches that found a needed article", "1.000") in report.rows()
    # a search that showed other articles does not count
    missed = copy.deepcopy(trajs[0])
    missed.steps[0].observation = Observation(ok=True, output="Doc 1 (Title: Somewhere) Nothing useful.")
    report = summarize_eval(tasks, [[missed]] + [[t] for t in trajs[1:]], proto, n_samples=1)
    assert report.search_hit_rate == (n_search - 1) / n_search
    # tasks without a plan report no hit rate
    assert summarize_eval([], [], proto, n_samples=1).search_hit_rate is None
