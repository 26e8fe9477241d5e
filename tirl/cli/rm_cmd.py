"""``tirl rm train`` and ``tirl rm score``: the trajectory reward model (AutoTraj)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from tirl.config import ConfigError, load_config

console = Console(stderr=True)
rm_app = typer.Typer(add_completion=False, no_args_is_help=True)


def _fail(msg: str) -> None:
    typer.echo(msg, err=True)
    raise typer.Exit(2)


@rm_app.command("train")
def rm_train(
    pairs: Path = typer.Argument(..., help="Preference pairs JSONL (prompt, chosen, rejected[, task_id]); tirl repair writes one."),
    out: Path = typer.Option(Path("runs/rm"), help="Directory to save the reward model to."),
    overrides: list[str] | None = typer.Argument(None, help="rm.* / model.* overrides, e.g. rm.epochs=1 model.name=tiny-random."),
):
    """Train a scalar-head reward model (LoRA, Bradley-Terry) and report held-out pairwise accuracy."""
    from tirl.rm.pairs import read_pairs
    from tirl.train.resolve import resolve_eval_model
    from tirl.train.rm import train_reward_model

    try:
        cfg = load_config(None, list(overrides or []))
        data = read_pairs(pairs)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
    base = resolve_eval_model(cfg.rm.model or cfg.model.name)
    console.print(f"[bold]tirl rm train[/] {len(data)} pairs from {pairs}, base {base}, LoRA r={cfg.rm.lora_r}, {cfg.rm.epochs} epoch(s)")

    def on_step(st):
        if st.step % 10 == 0 or st.step == 1:
            console.print(f"step {st.step:>4}  BT loss {st.loss:.4f}  batch acc {st.accuracy:.2f}  {st.seconds:.1f}s")

    res = train_reward_model(data, base, cfg.rm, out=out, seed=cfg.train.seed, on_step=on_step)
    summary = {
        "n_train": res.n_train,
        "n_val": res.n_val,
        "val_accuracy_before": res.val_accuracy_before,
        "val_accuracy_after": res.val_accuracy_after,
        "val_loss_before": res.val_loss_before,
        "val_loss_after": res.val_loss_after,
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    if res.n_val:
        console.print(
            f"held-out pairwise accuracy {res.val_accuracy_before:.3f} -> {res.val_accuracy_after:.3f} "
            f"(BT loss {res.val_loss_before:.4f} -> {res.val_loss_after:.4f}, {res.n_val} pairs)"
        )
    console.print(f"saved the reward model to {out} (use it in RL with reward.rm.path={out})")


@rm_app.command("score")
def rm_score(
    rm: Path = typer.Argument(..., help="A reward model directory (tirl rm train --out)."),
    data: Path = typer.Argument(..., help="Pairs JSONL (prompt, chosen, rejected: reports pairwise accuracy) or rows with prompt and completion."),
    out: Path | None = typer.Option(None, help="Write the rows with their scores here (JSONL)."),
    batch_size: int = typer.Option(8, min=1),
):
    """Score trajectories with a trained reward model (the same rendering it was trained on)."""
    from tirl.rm.model import RewardModelScorer

    try:
        scorer = RewardModelScorer.load(rm, batch_size)
    except FileNotFoundError as e:
        _fail(str(e))
    rows = []
    for i, line in enumerate(data.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            _fail(f"{data}:{i}: invalid JSON ({e.msg})")
        if (
            not isinstance(d, dict)
            or not isinstance(d.get("prompt"), str)
            or not (isinstance(d.get("completion"), str) or (isinstance(d.get("chosen"), str) and isinstance(d.get("rejected"), str)))
        ):
            _fail(f"{data}:{i}: need 'prompt' and either 'completion' or 'chosen' and 'rejected' strings")
        rows.append(d)
    if not rows:
        _fail(f"{data}: nothing to score")
    pairs = all("chosen" in d for d in rows)
    if pairs:
        c = scorer.score_texts([d["prompt"] for d in rows], [d["chosen"] for d in rows])
        r = scorer.score_texts([d["prompt"] for d in rows], [d["rejected"] for d in rows])
        for d, x, y in zip(rows, c, r):
            d["score_chosen"], d["score_rejected"] = x, y
        acc = sum(x > y for x, y in zip(c, r)) / len(rows)
        typer.echo(json.dumps({"pairs": len(rows), "pairwise_accuracy": acc, "mean_margin": sum(x - y for x, y in zip(c, r)) / len(rows)}))
    else:
        scores = scorer.score_texts([d["prompt"] for d in rows], [d.get("completion", "") for d in rows])
        for d, s in zip(rows, scores):
            d["score"] = s
        typer.echo(json.dumps({"rows": len(rows), "mean_score": sum(scores) / len(scores)}))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(d) + "\n" for d in rows))
        console.print(f"wrote {out}")
