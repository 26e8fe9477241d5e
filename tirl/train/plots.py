"""PNG plots of a run's main curves, written at the end of training."""

from __future__ import annotations

from pathlib import Path

PANELS = [
    ("reward/mean", "mean reward"),
    ("reward/accuracy", "train accuracy"),
    ("eval/accuracy", "held-out accuracy"),
    ("rollout/tool_calls", "tool calls / trajectory"),
    ("loss/pg", "policy loss"),
    ("policy/entropy", "entropy"),
    ("policy/grad_norm", "grad norm"),
    ("rollout/policy_tokens", "policy tokens / trajectory"),
]


def plot_metrics(rows: list[dict], out: Path, title: str = "") -> Path | None:
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [(k, t) for k, t in PANELS if any(r.get(k) is not None for r in rows)]
    if not panels:
        return None
    cols = 4
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
    for ax, (key, label) in zip(axes.flat, panels):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        sft = [(r["step"], r["eval_sft/accuracy"]) for r in rows if key == "eval/accuracy" and r.get("eval_sft/accuracy") is not None]
        if sft:  # an SFT warm-up ran at step 0: before it, after it, then the RL evaluations
            ax.plot([p[0] for p in pts if p[0] == 0], [p[1] for p in pts if p[0] == 0], "s", ms=5, label="before")
            rl = sft[:1] + [p for p in pts if p[0] > 0]
            ax.plot([p[0] for p in rl], [p[1] for p in rl], marker="o", ms=3, label="after SFT, then RL")
            ax.legend(fontsize=8)
        else:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 30 else None, ms=3)
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False)  # flat curves must not read as 1e-6 + offset
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
