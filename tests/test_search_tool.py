"""The search tool as the model meets it: what it reads (``Doc i (Title: ...) text``, topk,
cut passages, repeats dropped), errors as observations (empty, 10 kB, bad topk), the per-run
query cache, both protocols (``<search>query</search>``; a Hermes schema with query and optional
topk), and the config section that builds it."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from tirl.protocol import make_protocol
from tirl.tools.search import SearchConfig, SearchTool
from tirl.tools.search.format import NO_MATCH
from tirl.types import ToolCall

ROWS = [
    {"id": "v1", "title": "Veltrax Labs", "text": "Veltrax Labs was founded in 1987 by Ana Voss. Veltrax Labs is headquartered in Kessel."},
    {"id": "v2", "title": "Veltrax Motors", "text": "Veltrax Motors was founded in 1992 by Leo Voss."},
    {
        "id": "v3",
        "title": "Veltrax Labs",
        "text": "Veltrax Labs was founded in 1987 by Ana Voss. Veltrax Labs is headquartered in Kessel.",
    },  # a repeat
    {"id": "a", "title": "Ana Voss", "text": "Ana Voss was born in 1952 in Kessel. " + "She studied engineering and chemistry. " * 30},
    {"id": "k", "title": "Kessel", "text": "Kessel has a population of 48200."},
]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


@pytest.fixture
def tool(corpus, tmp_path):
    return SearchTool(SearchConfig(corpus=str(corpus), cache_dir=str(tmp_path / "cache"), max_passage_chars=120), show_progress=False)


def _run(tool, args):
    return asyncio.run(tool.run(ToolCall("search", args, ""), "s"))


def test_results_as_the_model_reads_them(tool):
    obs = _run(tool, {"query": "Who founded Veltrax Labs"})
    assert obs.ok and not obs.error
    lines = obs.output.splitlines()
    assert lines[0].startswith("Doc 1 (Title: Veltrax Labs) Veltrax Labs was founded in 1987 by Ana Voss.")
    # three passages match, one of them a repeat: it is dropped
    assert len(lines) == 2 and lines[1].startswith("Doc 2 (Title: Veltrax Motors)")
    # five passages match "Voss Kessel" (one a repeat): topk = 3 distinct ones are shown
    lines = _run(tool, {"query": "Voss Kessel"}).output.splitlines()
    assert len(lines) == 3 and sum("(Title: Veltrax Labs)" in line for line in lines) == 1
    assert [line.split(" ", 2)[:2] for line in lines] == [["Doc", "1"], ["Doc", "2"], ["Doc", "3"]]
    # a long passage is cut at max_passage_chars with an ellipsis
    obs = _run(tool, {"query": "Ana Voss born", "topk": 1})
    (line,) = obs.output.splitlines()
    assert line.startswith("Doc 1 (Title: Ana Voss) Ana Voss was born in 1952") and line.endswith("…")
    assert len(line.split(") ", 1)[1]) <= 120
    assert _run(tool, {"query": "zzqx"}).output == NO_MATCH


@pytest.mark.parametrize(
    "args, text",
    [
        ({"query": ""}, "empty"),
        ({"query": "   \n "}, "empty"),
        ({"query": "Veltrax " * 1280}, "characters long"),  # 10 kB
        ({"query": 5}, "must be a string"),
        ({}, "must be a string"),
        ({"query": "Kessel", "topk": 0}, "topk must be an integer from 1 to 10"),
        ({"query": "Kessel", "topk": 11}, "topk must be"),
        ({"query": "Kessel", "topk": "many"}, "topk must be"),
        ({"query": "Kessel", "topk": True}, "topk must be"),
    ],
)
def test_bad_calls_are_observations(tool, args, text):
    obs = _run(tool, args)
    assert not obs.ok and not obs.infra_error and text in obs.output
    assert obs.output.startswith("Error:")


def test_topk_from_the_call_and_digits_as_text(tool):
    assert len(_run(tool, {"query": "Voss", "topk": 1}).output.splitlines()) == 1
    assert len(_run(tool, {"query": "Voss", "topk": "2"}).output.splitlines()) == 2


def test_malformed_call_is_answered_with_its_error(tool):
    obs = asyncio.run(tool.run(ToolCall("search", {}, "<search></search>", error="empty <search> call"), "s"))
    assert not obs.ok and obs.output == "empty <search> call"


def test_query_cache_remembers_results_per_run(tool):
    first = _run(tool, {"query": "Kessel population"})
    again = _run(tool, {"query": "  Kessel   population "})  # same query up to spacing
    assert again.output == first.output and tool.stats.cache_hits == 1 and tool.stats.queries == 2
    _run(tool, {"query": "Kessel population", "topk": 1})  # another topk is another entry
    assert tool.stats.cache_hits == 1


def test_cache_size_bounds_the_cache(corpus, tmp_path):
    t = SearchTool(SearchConfig(corpus=str(corpus), cache_dir=str(tmp_path / "c"), cache_size=2), show_progress=False)
    for q in ("Kessel", "Veltrax", "Voss", "Kessel"):
        _run(t, {"query": q})
    assert t.stats.cache_hits == 0 and len(t._cache) == 2
    t0 = SearchTool(SearchConfig(corpus=str(corpus), cache_dir=str(tmp_path / "c"), cache_size=0), show_progress=False)
    _run(t0, {"query": "Kessel"})
    _run(t0, {"query": "Kessel"})
    assert t0.stats.cache_hits == 0


def test_backend_choice_is_checked(corpus):
    from tirl.errors import UserError

    with pytest.raises(UserError, match="exactly one of corpus"):
        SearchTool(SearchConfig())
    with pytest.raises(UserError, match="exactly one of corpus"):
        SearchTool(SearchConfig(corpus=str(corpus), url="http://127.0.0.1:1"))
    with pytest.raises(UserError, match="must start with http"):
        SearchTool(SearchConfig(url="127.0.0.1:8000"))


def test_tag_protocol_parses_search_calls(tool, tiny):
    from tirl.tools.calculator import Calculator

    proto = make_protocol("tag", [Calculator(), tool], tiny.tokenizer)
    assert "- <search>query</search>:" in proto.system_prompt() and "</search>" in proto.stop_strings()
    turn = proto.parse_turn("<think>look it up</think>\n<search>Who founded Veltrax Labs</search>", ended_by_eos=False)
    assert turn.call == ToolCall("search", {"query": "Who founded Veltrax Labs"}, "<search>Who founded Veltrax Labs</search>")
    obs = asyncio.run(tool.run(turn.call, "s"))
    assert proto.observation_text(turn.call, obs).startswith("\n<result>\nDoc 1 (Title: Veltrax Labs)")
    empty = proto.parse_turn("<search>  </search>", ended_by_eos=False)
    assert empty.call.error and "empty <search> call" in empty.call.error


def test_hermes_protocol_offers_query_and_optional_topk(tool, tiny):
    proto = make_protocol("hermes", [tool], tiny.tokenizer)
    schema = next(json.loads(line) for line in proto.system_prompt().splitlines() if line.startswith('{"type": "function"'))
    fn = schema["function"]
    assert fn["name"] == "search" and fn["parameters"]["required"] == ["query"]
    assert set(fn["parameters"]["properties"]) == {"query", "topk"} and fn["parameters"]["properties"]["topk"]["type"] == "integer"
    turn = proto.parse_turn('<tool_call>\n{"name": "search", "arguments": {"query": "Kessel", "topk": 2}}\n</tool_call>', ended_by_eos=False)
    assert turn.call.arguments == {"query": "Kessel", "topk": 2} and turn.call.error is None
    missing = proto.parse_turn('<tool_call>{"name": "search", "arguments": {"topk": 2}}</tool_call>', ended_by_eos=False)
    assert missing.call.error == "missing argument(s) for search: query"
    obs = asyncio.run(tool.run(turn.call, "s"))
    assert obs.ok and len(obs.output.splitlines()) == 2


def test_config_section_mirrors_the_tool_dataclass():
    from tirl.config import RetrievalSection

    section = RetrievalSection()
    fields = {f.name: f.default for f in dataclasses.fields(SearchConfig)}
    assert set(RetrievalSection.model_fields) == set(fields)
    assert {k: getattr(section, k) for k in fields} == fields


def test_build_tools_offers_search_from_config(corpus, tmp_path):
    from tirl.config import ConfigError, load_config
    from tirl.train.components import build_tools, search_config

    cfg = load_config(
        None,
        [
            "tools.python=false",
            "tools.search=true",
            f"tools.retrieval.corpus={corpus}",
            f"tools.retrieval.cache_dir={tmp_path}",
            "tools.retrieval.topk=2",
        ],
    )
    (t,) = build_tools(cfg)
    assert isinstance(t, SearchTool) and t.cfg.topk == 2
    assert len(_run(t, {"query": "Voss"}).output.splitlines()) == 2
    with pytest.raises(ConfigError, match="tools.retrieval.corpus"):
        search_config(load_config(None, ["tools.search=true"]))
    # lookup searches its own corpus when none is named, and has the tool unless told otherwise
    sc = search_config(load_config(None, ["tools.search=true", "task.name=lookup", "task.seed=3"]))
    assert sc.corpus is not None and sc.corpus.endswith("seed3.jsonl")
    assert [x.name for x in build_tools(load_config(None, ["tools.python=false", "task.name=lookup"]))] == ["search"]
    assert build_tools(load_config(None, ["tools.python=false", "task.name=lookup", "tools.search=false"])) == []
    assert build_tools(load_config(None, ["tools.python=false"])) == []
    with pytest.raises(ConfigError, match="tools.retrieval.topk"):
        load_config(None, ["tools.retrieval.topk=0"])
