"""``tirl report`` on a real ELPO run (tiny-random driven by a scripted engine, tests/report_runs.py):
what the HTML file embeds is what the run directory holds. Tokens decode back to the ids' text,
masks are the training masks, each step carries the advantage and clip bound its tree node was
trained with, ELPO's two advantage terms mix into the trained value, evaluations match
metrics.jsonl, the file is self-contained and model text cannot break out of its data element.
The browser checks are in test_report_browser.py."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from report_runs import scripted_run
from typer.testing import CliRunner

from tirl.cli.main import app
from tirl.config import ReportSection, load_config
from tirl.report import write_report
from tirl.report.select import pick_eval_tasks, pick_steps, pick_tasks
from tirl.report.tokens import TokenText, find_tokenizer
from tirl.rollout.io import read_jsonl, read_trees, write_jsonl
from tirl.rollout.masks import loss_mask
from tirl.types import Observation, Origin, Segment, Step, StopReason, ToolCall, Trajectory

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def run(elpo_run):
    return elpo_run


def embedded(html_path) -> dict:
    text = html_path.read_text()
    m = re.search(r'<script type="application/json" id="tirl-data">(.*?)</script>', text, re.S)
    assert m, "no data element"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def report(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "r.html"
    res = write_report([run], out)
    assert res.path == out and res.bytes == len(out.read_bytes())
    return embedded(out)


def test_trajectories_are_the_run_files(run, report):
    cfg = load_config(str(run / "config.yaml"))
    tok = TokenText(find_tokenizer(run, cfg.model.name))
    view = report["runs"][0]
    assert [s["step"] for s in view["steps"]] == [1, 2]
    on_disk = {(t.task_id, t.sample): t for t in read_jsonl(run / "trajectories" / "step_0001.jsonl")}
    shown = view["steps"][0]["trajectories"]
    assert shown and len(shown) == len(on_disk)  # 2 tasks per step, report.tasks = 4: every sample
    trees = {t.task_id: t for t in read_trees(run / "trees" / "step_0001.jsonl")}
    seen_error = seen_widened = seen_critical = False
    for tv in shown:
        t = on_disk[(tv["task_id"], tv["sample"])]
        assert len(tv["segments"]) == len(t.segments)
        mask = loss_mask(t)
        off = len(t.prompt_token_ids)
        leaf = trees[t.task_id].leaf_for_sample(t.sample)
        path = leaf.path()[1:]
        for sv, seg in zip(tv["segments"], t.segments):
            assert "".join(sv["tokens"]) == tok.decode(seg.token_ids)
            assert len(sv["tokens"]) == len(seg.token_ids)
            assert sv["origin"] == seg.origin.value
            assert sv["trained"] == bool(mask[off]) and sv["trained"] == (seg.origin is Origin.POLICY)
            off += len(seg.token_ids)
            assert sv["logprob"] == (None if seg.logprobs is None else [round(x * 100) for x in seg.logprobs])
            node = path[sv["step"]]
            if seg.origin is Origin.POLICY:  # the tree node's own values, as trained
                assert sv["advantage"] == node.advantage and sv["clip_low"] == node.clip_low
                assert sv["widened"] == (node.clip_low is not None and node.clip_low > cfg.algo.clip_low)
                seen_widened |= sv["widened"]
                seen_critical |= sv["critical"]
            else:
                assert sv["advantage"] is None and not sv["widened"]
        assert tv["tool_error"] == any(not s.observation.ok for s in t.steps if s.call)
        seen_error |= tv["tool_error"]
        for cv in tv["calls"]:
            step = t.steps[cv["step"]]
            assert cv["code"] == step.call.arguments["code"] and cv["output"] == step.observation.output
            assert cv["ok"] == step.observation.ok
        assert tv["correct"] == (t.rewards["correct"] == 1.0) and tv["reward"] == round(t.reward, 4)
        assert tv["advantage"] == leaf.advantage
    assert seen_error and seen_widened and seen_critical  # the scripted run has all three


def test_elpo_trees_show_what_credit_computed(run, report):
    cfg = load_config(str(run / "config.yaml"))
    lam = cfg.strategy.elpo.lam
    trees = report["runs"][0]["steps"][0]["trees"]
    on_disk = {t.task_id: t for t in read_trees(run / "trees" / "step_0001.jsonl")}
    assert {t["task_id"] for t in trees} == set(on_disk)
    for tv in trees:
        tree = on_disk[tv["task_id"]]
        assert tv["strategy"] == "elpo" and len(tv["nodes"]) == len(list(tree.nodes()))
        nodes = {n["id"]: n for n in tv["nodes"]}
        for n in tree.nodes():
            nv = nodes[n.id]
            assert nv["fork"] == (len(n.children) > 1)
            if n.parent is None:
                continue
            # A_hier = lam A_b + (1 - lam) A_t (ELPO Eq. 10): the recomputed terms mix into the trained value
            assert nv["advantage"] == pytest.approx(lam * nv["a_branch"] + (1 - lam) * nv["a_traj"], abs=1e-3)
        crit = {c.leaf: c.t_crit for c in tree.critical}
        assert crit, "every scripted tree has a search"
        for leaf_id, t_crit in crit.items():
            assert nodes[tree.node(leaf_id).path()[t_crit].id]["critical"]
        for nv in tv["nodes"]:
            if nv["sample"] is not None:  # leaves link to their embedded trajectory
                assert nv["trajectory"] == f"0/train/1/{tv['task_id']}/{nv['sample']}"


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["arpo", "grpo"])
def test_other_strategies_show_their_credit(tmp_path, recipe):
    """ARPO trees and flat GRPO groups: every policy segment carries the advantage its leaf (soft
    attribution, GRPO) was trained with, as the saved tree recorded it."""
    run = scripted_run(
        tmp_path, name=recipe, recipe=recipe, steps=1, extra=["strategy.arpo.budget=4", "strategy.arpo.initial=2", "rollout.group_size=3"]
    )
    view = embedded(write_report([run], tmp_path / "r.html").path)["runs"][0]
    trees = {t.task_id: t for t in read_trees(run / "trees" / "step_0001.jsonl")}
    (step,) = view["steps"]
    assert {t["strategy"] for t in step["trees"]} == {"arpo" if recipe == "arpo" else "flat"}
    for tv in step["trajectories"]:
        leaf = trees[tv["task_id"]].leaf_for_sample(tv["sample"])
        assert leaf.advantage is not None and tv["advantage"] == leaf.advantage
        assert all(s["advantage"] == leaf.advantage for s in tv["segments"] if s["origin"] == "policy")
        assert not any(s["widened"] or s["critical"] for s in tv["segments"])


def test_evaluations_match_metrics(run, report):
    view = report["runs"][0]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    stages = {s["tag"]: s for s in view["evals"]}
    assert list(stages) == ["before", "after"]
    assert stages["before"]["scalars"]["accuracy"] == rows[0]["eval/accuracy"]
    assert stages["after"]["scalars"]["pass@1"] == rows[-1]["eval/pass@1"] and stages["after"]["step"] == 2
    for tag in ("before", "after"):  # the same held-out tasks at both stages, every sample
        disk = list(read_jsonl(run / f"eval_{tag}" / f"step_{stages[tag]['step']:04d}.jsonl"))
        assert len(view["eval_trajectories"][tag]) == len(disk) == 6
        assert all(t["trained"] is None for tv in view["eval_trajectories"][tag] for t in tv["segments"])
    assert view["metrics"]["reward/mean"] == [[r["step"], round(r["reward/mean"], 6)] for r in rows if "reward/mean" in r]
    assert view["status"] == "finished" and view["label"].startswith("elpo")


def test_the_page_is_self_contained(run, tmp_path):
    html = (write_report([run], tmp_path / "r.html")).path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the report must load nothing from the network"
    assert "<link" not in html and "<script src" not in html
    assert html.count("</script>") == 2  # the data element and the inlined scripts, nothing else closes a script


def test_model_text_cannot_close_the_data_element(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints", "final_model", "tb", ".lock"))
    f = copy / "trajectories" / "step_0001.jsonl"
    trajs = list(read_jsonl(f))
    evil = "</script><script>document.title='owned'</script><!-- -->"
    trajs[0].text = evil
    trajs[0].answer = evil
    write_jsonl(f, trajs)
    html = write_report([copy], tmp_path / "r.html").path.read_text()
    assert html.count("</script>") == 2
    data = embedded(tmp_path / "r.html")
    assert any(t["text"] == evil for s in data["runs"][0]["steps"] for t in s["trajectories"])


def test_sample_sizes_are_respected_and_said(run, tmp_path):
    data = embedded(write_report([run], tmp_path / "r.html", ReportSection(steps=1, tasks=1, eval_tasks=1)).path)
    view = data["runs"][0]
    assert [s["step"] for s in view["steps"]] == [2]  # one step: the last
    assert {t["task_id"] for t in view["steps"][0]["trajectories"]} == {view["steps"][0]["trajectories"][0]["task_id"]}
    assert all(len({t["task_id"] for t in v}) == 1 for v in view["eval_trajectories"].values())
    assert "1 of 2 training steps" in view["sample_note"] and "1 of 3 held-out tasks" in view["sample_note"]


def test_a_torn_file_is_skipped_and_named(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints", "final_model", "tb", ".lock"))
    f = copy / "trajectories" / "step_0002.jsonl"
    f.write_text(f.read_text()[:500])  # a killed writer's half line
    view = embedded(write_report([copy], tmp_path / "r.html").path)["runs"][0]
    assert [s["step"] for s in view["steps"]] == [1]
    assert any("step_0002.jsonl" in n for n in view["notes"])


def test_a_run_that_never_stepped(tmp_path):
    d = tmp_path / "fresh"
    d.mkdir()
    (d / "config.yaml").write_text("run: {name: fresh}\ntrain: {steps: 5}\nnot_a_section: {x: 1}\n")
    view = embedded(write_report([d], tmp_path / "r.html").path)["runs"][0]
    assert view["steps"] == [] and view["evals"] == [] and view["status"] == "interrupted"
    assert any("does not load" in n for n in view["notes"])  # a config of another version: named, not fatal


def test_several_runs_in_one_report(run, tmp_path):
    data = embedded(write_report([run, run], tmp_path / "r.html").path)
    assert len(data["runs"]) == 2
    keys = [t["key"] for r in data["runs"] for s in r["steps"] for t in s["trajectories"]]
    assert len(keys) == len(set(keys))  # every trajectory addressable on its own


def test_report_and_runs_commands(run, tmp_path):
    copy = tmp_path / "runs" / "done"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".lock"))
    stopped = tmp_path / "runs" / "stopped"  # stopped after its checkpoint at step 1
    shutil.copytree(run, stopped, ignore=shutil.ignore_patterns(".lock", "final_model", "step_000002"))
    lines = (stopped / "metrics.jsonl").read_text().splitlines()
    (stopped / "metrics.jsonl").write_text("\n".join(lines[:2]) + "\n")
    early = tmp_path / "runs" / "early"  # stopped before any checkpoint
    shutil.copytree(stopped, early, ignore=shutil.ignore_patterns("checkpoints"))
    r = CliRunner().invoke(app, ["report", str(copy)])
    assert r.exit_code == 0, r.output
    assert f"report: {copy / 'report.html'}" in r.output and (copy / "report.html").is_file()
    r = CliRunner().invoke(app, ["runs", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    rows = {line.split("│")[1].strip(): line for line in r.output.splitlines() if line.count("│") > 3}
    assert "finished" in rows["done"] and "2/2" in rows["done"] and "elpo" in rows["done"]
    assert "resumable" in rows["stopped"] and "1/2" in rows["stopped"]
    assert "interrupted" in rows["early"]
    from tirl.train.run_dir import claim

    lock = claim(copy, fresh=False)  # a live run holds its lock
    try:
        r = CliRunner().invoke(app, ["runs", str(tmp_path / "runs")])
        assert "running" in [line for line in r.output.splitlines() if "│ done" in line][0]
    finally:
        lock.release()


def test_pick_steps_spreads_and_keeps_the_ends():
    assert pick_steps(range(1, 41), 10) == [1, 5, 10, 14, 18, 23, 27, 31, 36, 40]
    assert pick_steps([3, 1, 2], 10) == [1, 2, 3] and pick_steps(range(1, 9), 1) == [8]


def _traj(task: str, sample: int, correct: bool = False, tool_ok: bool = True, stop=StopReason.ANSWER) -> Trajectory:
    step = Step(0, ToolCall("python", {"code": "1"}), Observation(tool_ok, "x"), 1)
    return Trajectory(
        task,
        sample,
        [1],
        [Segment(Origin.POLICY, [2]), Segment(Origin.TOOL, [3])],
        [step],
        stop_reason=stop,
        rewards={"correct": float(correct)},
    )


def test_pick_tasks_shows_each_kind_first():
    groups = {
        "plain1": [_traj("plain1", 0)],
        "plain2": [_traj("plain2", 0)],
        "err": [_traj("err", 0, tool_ok=False)],
        "cut": [_traj("cut", 0, stop=StopReason.LENGTH)],
        "right": [_traj("right", 0, correct=True)],
    }
    assert pick_tasks(groups, 3) == ["err", "cut", "right"]  # file order among the chosen
    assert pick_tasks(groups, 4) == ["plain1", "err", "cut", "right"]
    assert pick_tasks(groups, 9) == list(groups)


def test_pick_eval_tasks_puts_changed_tasks_first():
    first = {"a": [_traj("a", 0)], "b": [_traj("b", 0)], "c": [_traj("c", 0, correct=True)]}
    last = {"a": [_traj("a", 0)], "b": [_traj("b", 0, correct=True)], "c": [_traj("c", 0)]}
    assert pick_eval_tasks(first, last, 2) == ["b", "c"] and pick_eval_tasks(first, last, 5) == ["b", "c", "a"]


def test_token_pieces_keep_multibyte_characters(run):
    tok = TokenText(find_tokenizer(run, "tiny-random"))
    text = "é wörld 日本語 😀 <python>print(1)</python>"
    ids = tok._tok.encode(text, add_special_tokens=False).ids
    pieces = tok.pieces(ids)
    assert "".join(pieces) == tok.decode(ids) == text and len(pieces) == len(ids)
    assert "\ufffd" not in "".join(pieces) and "😀" in pieces[pieces.index("😀")]
