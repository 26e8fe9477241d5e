"""Trajectory reward model on tiny-random: pairs I/O and split, one rendering for training and
serving, Bradley-Terry training lowers the loss on a separable toy set, save/load round trip,
the RM reward in RL config."""

from __future__ import annotations

import json

import pytest

from tirl.config import RMConfig
from tirl.rm.model import RewardModelScorer, rm_text
from tirl.rm.pairs import PreferencePair, read_pairs, split_pairs, write_pairs
from tirl.train.rm import evaluate_pairs, train_reward_model


def toy_pairs(n=12):
    # separable: the chosen trajectory answers with a boxed number, the rejected one rambles
    return [
        PreferencePair(
            f"What is {i}+1?", f"<think>add</think><answer>\\boxed{{{i + 1}}}</answer>", "<think>hmm hmm hmm maybe maybe</think> hmm", task_id=f"t{i}"
        )
        for i in range(n)
    ]


def test_pairs_io_and_split(tmp_path):
    p = tmp_path / "pairs.jsonl"
    assert write_pairs(p, toy_pairs(4)) == 4
    assert read_pairs(p) == toy_pairs(4)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "chosen": "a"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'rejected'"):
        read_pairs(bad)
    train, val = split_pairs(toy_pairs(20), 0.1, seed=0)
    assert len(val) == 2 and len(train) == 18 and not {p.task_id for p in train} & {p.task_id for p in val}
    same_task = [PreferencePair("q", "a", "b", "t0"), PreferencePair("q", "c", "d", "t0"), PreferencePair("r", "a", "b", "t1")]
    train, val = split_pairs(same_task, 0.4, seed=1)
    assert len({p.task_id for p in val}) == 1  # a task's pairs stay together
    assert split_pairs(toy_pairs(3), 0.0)[1] == []


def test_rendering_is_the_chat_template_without_a_doubled_eos(tiny):
    tok = tiny.tokenizer
    a = rm_text(tok, "q", "<answer>1</answer><|im_end|>")
    assert a == rm_text(tok, "q", "<answer>1</answer>")
    assert a.count("<|im_end|>") == 3 and "<|im_start|>user\nq" in a  # system, user, assistant turns


def test_bt_training_reduces_loss_and_round_trips(tmp_path):
    cfg = RMConfig(lr=3e-3, epochs=6, batch_size=4, val_fraction=0.25, max_tokens=64, lora_r=4, lora_alpha=8)
    pairs = toy_pairs(12)
    res = train_reward_model(pairs, "tiny-random", cfg, out=tmp_path / "rm", seed=0)
    assert res.n_train == 9 and res.n_val == 3
    first, last = res.history[0].loss, sum(s.loss for s in res.history[-3:]) / 3
    assert last < first * 0.5, (first, last)  # BT loss falls on a separable set
    assert res.val_loss_after < res.val_loss_before and res.val_accuracy_after == 1.0
    meta = json.loads((tmp_path / "rm" / "rm.json").read_text())
    assert meta["base"] == "tiny-random" and meta["n_val"] == 3
    # the saved model scores exactly as the trained one did (same rendering, same weights)
    scorer = RewardModelScorer.load(tmp_path / "rm", batch_size=2)
    loss, acc = evaluate_pairs(scorer.model, scorer.tokenizer, pairs, cfg.max_tokens)
    c = scorer.score_texts([p.prompt for p in pairs], [p.chosen for p in pairs])
    r = scorer.score_texts([p.prompt for p in pairs], [p.rejected for p in pairs])
    assert acc == pytest.approx(sum(x > y for x, y in zip(c, r)) / len(pairs))
    assert all(x > y for x, y in zip(c, r))


def test_missing_reward_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a tirl reward model"):
        RewardModelScorer.load(tmp_path)


@pytest.fixture(scope="module")
def cli_rm(tmp_path_factory):
    from typer.testing import CliRunner

    from tirl.cli.main import app

    d = tmp_path_factory.mktemp("rmcli")
    write_pairs(d / "pairs.jsonl", toy_pairs(8))
    res = CliRunner().invoke(
        app,
        [
            "rm",
            "train",
            str(d / "pairs.jsonl"),
            "--out",
            str(d / "rm"),
            "model.name=tiny-random",
            "rm.lr=3e-3",
            "rm.epochs=4",
            "rm.batch_size=4",
            "rm.val_fraction=0.25",
            "rm.max_tokens=64",
        ],
    )
    assert res.exit_code == 0, res.output
    return d


def test_cli_rm_train_and_score(cli_rm):
    from typer.testing import CliRunner

    from tirl.cli.main import app

    summary = json.loads((cli_rm / "rm" / "train_summary.json").read_text())
    assert summary["n_val"] == 2 and summary["val_loss_after"] < summary["val_loss_before"]
    runner = CliRunner()
    res = runner.invoke(app, ["rm", "score", str(cli_rm / "rm"), str(cli_rm / "pairs.jsonl"), "--out", str(cli_rm / "scored.jsonl")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["pairwise_accuracy"] == 1.0
    rows = [json.loads(x) for x in (cli_rm / "scored.jsonl").read_text().splitlines()]
    assert all(r["score_chosen"] > r["score_rejected"] for r in rows)
    (cli_rm / "bad.jsonl").write_text('{"prompt": "q"}\n')
    res = runner.invoke(app, ["rm", "score", str(cli_rm / "rm"), str(cli_rm / "bad.jsonl")])
    assert res.exit_code == 2 and "bad.jsonl:1" in res.output


def test_rm_reward_in_rl_config(cli_rm):
    """reward.rm.path loads the model once; correct answers get max(S, S + 0.2·rm)."""
    from tirl.config import load_config
    from tirl.rewards.compose import apply_rewards
    from tirl.train import components as C
    from tirl.types import StopReason, Task, Trajectory

    class Proto:
        def format_error(self, text):
            return None

    cfg = load_config("autotraj", [f"reward.rm.path={cli_rm / 'rm'}"])
    specs = C.rewards(cfg, Proto())
    assert specs[0].name == "rm_outcome"
    task = Task("t3", "What is 3+1?", "4", {"verifier": "exact"})
    good = Trajectory("t3", 0, [0], answer="4", stop_reason=StopReason.ANSWER, text="<think>add</think><answer>\\boxed{4}</answer>")
    wrong = Trajectory("t3", 1, [0], answer="5", stop_reason=StopReason.ANSWER, text="<think>hmm hmm hmm maybe maybe</think> hmm")
    apply_rewards([(task, [good, wrong])], specs)
    scorer = RewardModelScorer.load(cli_rm / "rm")
    s = scorer.score([task], [good.text])[0]
    assert good.reward == pytest.approx(max(1.0, 1.0 + 0.2 * s), abs=1e-5) and good.rewards["outcome"] == 1.0
    assert wrong.reward == 0.0


def test_lora_wrap_prints_no_library_deprecation_warning():
    """PEFT reads a property transformers deprecates; tirl silences that FutureWarning (it is
    not the user's to act on) and nothing else."""
    import warnings

    from tirl.rm.model import build_reward_model

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        model, _ = build_reward_model("tiny-random")
    assert any(p.requires_grad for p in model.parameters())
