"""The evaluation runner end to end: scripted answers per task and sample through the real tool
loop and reward specs, metrics checked against hand-computed values."""

import json

import pytest

from tirl.engine.base import Completion, Engine, FinishReason
from tirl.eval import evaluate
from tirl.protocol import TagProtocol
from tirl.rollout import RolloutConfig
from tirl.tasks import load_tasks


class PerSampleEngine(Engine):
    """Scripted engine whose turns depend on task and sample: ``scripts[key][g]`` is the list of
    turns of sample g of the task whose prompt contains ``key``. A request continues the
    trajectory whose ids so far are the longest prefix of it; otherwise it starts the next sample."""

    def __init__(self, tokenizer, scripts):
        self.tokenizer = tokenizer
        self.scripts = scripts
        self.started = {key: 0 for key in scripts}
        self.live = []  # (ids so far, turns, index of the next turn)

    def generate(self, requests):
        out = []
        for r in requests:
            prefix = r.prefix_ids
            known = [e for e in self.live if prefix[: len(e[0])] == e[0]]
            if known:
                entry = max(known, key=lambda e: len(e[0]))
                self.live.remove(entry)
                _, turns, k = entry
            else:
                text = self.tokenizer.decode(prefix)
                key = next(key for key in self.scripts if key in text)
                turns, k = self.scripts[key][self.started[key]], 0
                self.started[key] += 1
            text = turns[min(k, len(turns) - 1)]
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            stop = next((s for s in r.sampling.stop_strings if text.endswith(s)), None)
            finish = FinishReason.STOP_STRING if stop else FinishReason.LENGTH
            self.live.append((prefix + ids, turns, k + 1))
            out.append(Completion(ids, [-0.5] * len(ids), [1.0] * len(ids), finish, stop))
        return out


def answer(x):
    return [f"<answer>The answer is \\boxed{{{x}}}.</answer>"]


@pytest.fixture
def tasks():
    ts = load_tasks("arith", n=2, seed=0, split="test")
    assert [t.answer for t in ts] == ["558", "584"]
    return ts


def test_evaluate_end_to_end(tiny, echo_tool, tasks):
    a, b = tasks
    scripts = {
        a.prompt: [
            ["<python>print(1964 - 1406)</python>", *answer(558)],  # correct, one tool call
            answer(557),
            answer(557),
            answer("$558$"),  # correct; same class as 558 -> tie 2:2, first occurrence (558) wins
        ],
        b.prompt: [
            answer(584),  # correct
            answer("1,000"),
            answer(1000),  # same class as 1,000 -> the wrong class wins 2:1
            ["<python>boom</python>", *answer(12)],  # a failed tool call, then wrong
        ],
    }
    proto = TagProtocol([echo_tool])
    engine = PerSampleEngine(tiny.tokenizer, scripts)
    report = evaluate(engine, proto, tasks, n_samples=4, rollout_cfg=RolloutConfig(group_size=2), ks=(1, 2, 4, 8))

    assert [len(g) for g in report.groups] == [4, 4]  # n_samples overrides the config's group size
    assert report.n_trajectories == 8 and report.infra_errors == 0
    assert report.accuracy == pytest.approx(3 / 8)
    # task a: n=4, c=2; task b: n=4, c=1.  pass@2: 1 - C(2,2)/C(4,2) = 5/6 and 1 - C(3,2)/C(4,2) = 1/2
    assert set(report.pass_at_k) == {1, 2, 4}  # k = 8 > n is not reported
    assert report.pass_at_k[1] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert report.pass_at_k[2] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert report.pass_at_k[4] == pytest.approx(1.0)
    assert report.pass_at_k_tasks == {1: 2, 2: 2, 4: 2}
    assert report.maj_at_k == {4: pytest.approx(0.5)}
    assert [(t.correct, t.majority, t.majority_correct) for t in report.per_task] == [(2, "558", True), (1, "1,000", False)]

    assert report.tool_calls_per_task == pytest.approx(2 / 8)
    assert report.tool_use_rate == pytest.approx(2 / 8)
    assert report.tool_success_rate == pytest.approx(1 / 2)  # "boom" fails
    assert report.mean_turns == pytest.approx(10 / 8)
    assert report.void_turn_rate == 0.0
    assert report.format_ok == 1.0
    assert report.stop_reasons == {"answer": 8}
    assert report.efficiency == pytest.approx(3 / 8)  # the correct ones: 1 call, 0 calls, 0 calls
    policy = [t.n_policy_tokens for g in report.groups for t in g]
    assert report.mean_policy_tokens == pytest.approx(sum(policy) / 8) and report.mean_policy_tokens > 0
    # the training rewards were applied: outcome is the optimised reward, correct a metric
    assert [t.rewards["correct"] for t in report.groups[0]] == [1.0, 0.0, 0.0, 1.0]
    assert report.mean_reward == pytest.approx(3 / 8)

    d = json.loads(json.dumps(report.to_dict()))
    assert "groups" not in d and d["pass_at_k"]["2"] == pytest.approx(2 / 3)
    scalars = report.scalars()
    assert scalars["pass@1"] == pytest.approx(0.375) and scalars["maj@4"] == pytest.approx(0.5)
    rows = dict(report.rows())
    assert rows["pass@2"] == "0.667" and rows["maj@4"] == "0.500" and rows["tool success rate"] == "0.500"


def test_infra_failures_are_counted_not_scored(tiny, echo_tool, tasks):
    """A sample whose tool infrastructure fails is dropped: it is neither wrong nor counted in n."""
    real_run = echo_tool.run

    async def run(call, session):
        if "crash" in call.arguments["code"]:
            raise OSError("worker died")
        return await real_run(call, session)

    echo_tool.run = run
    a, b = tasks
    scripts = {
        a.prompt: [answer(558), answer(1), ["<python>crash</python>", *answer(558)]],
        b.prompt: [answer(1), answer(584), answer(584)],
    }
    report = evaluate(PerSampleEngine(tiny.tokenizer, scripts), TagProtocol([echo_tool]), tasks, n_samples=3, ks=(1, 3))
    assert report.infra_errors == 1 and report.stop_reasons == {"answer": 5, "error": 1}
    assert [(t.n, t.correct, t.infra_errors) for t in report.per_task] == [(2, 1, 1), (3, 2, 0)]
    assert report.accuracy == pytest.approx(3 / 5)
    assert report.pass_at_k[1] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # pass@3 needs 3 scored samples: only task b qualifies
    assert report.pass_at_k_tasks == {1: 2, 3: 1} and report.pass_at_k[3] == pytest.approx(1.0)
    # task a votes 558 vs 1 (tie, first wins); task b 584 wins 2:1
    assert report.maj_at_k == {3: pytest.approx(1.0)}
    # the only call belongs to the dropped trajectory: no scored calls at all
    assert report.tool_success_rate is None and report.tool_calls_per_task == 0.0
    rows = dict(report.rows())
    assert rows["pass@3"] == "1.000 (1 tasks)" and rows["tool success rate"] == "n/a (no calls)"


def test_bad_ks_fail_before_sampling(tiny, echo_tool, tasks):
    engine = PerSampleEngine(tiny.tokenizer, {})
    with pytest.raises(ValueError, match="k >= 1"):
        evaluate(engine, TagProtocol([echo_tool]), tasks, n_samples=2, ks=(0, 1))
    with pytest.raises(ValueError, match="n_samples"):
        evaluate(engine, TagProtocol([echo_tool]), tasks, n_samples=0)
    assert engine.live == []
