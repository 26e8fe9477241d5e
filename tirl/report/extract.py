"""A run directory into a ``RunView``: the config, every metric curve, the evaluations (from
``metrics.jsonl``, which every run writes, finished or not), and the sampled rollouts, trees and
evaluation trajectories the report embeds (``tirl.report.select`` picks them).

A file that does not read (the torn last file of a killed run) is skipped and named in the
report's notes; it never stops the report."""

from __future__ import annotations

import re
from pathlib import Path

from tirl.config import ReportSection
from tirl.report.model import EvalStage, RunView, StepSample, TrajectoryView
from tirl.report.runs import RunInfo, read_run
from tirl.report.select import group_by_task, pick_eval_tasks, pick_steps, pick_tasks
from tirl.report.tokens import TokenText, find_tokenizer
from tirl.report.trajectories import critical_nodes, step_credit, trajectory_view
from tirl.report.trees import tree_view
from tirl.rollout.io import read_jsonl, read_trees
from tirl.types import RolloutTree, Trajectory

_STEP_FILE = re.compile(r"step_(\d+)\.jsonl")
# metrics.jsonl prefixes of the evaluations (tirl.train.rl_trainer.RLTrainer.train)
_PREFIXES = ("eval_sft_t1", "eval_sft", "eval_t1", "eval")


def _step_files(d: Path) -> dict[int, Path]:
    if not d.is_dir():
        return {}
    return {int(m.group(1)): p for p in d.iterdir() if (m := _STEP_FILE.fullmatch(p.name))}


def _tag(prefix: str, step: int, final: int) -> str:
    """The evaluation's tag, as its trajectory directory ``eval_<tag>`` names it."""
    if prefix.startswith("eval_sft"):
        base = "after_sft"
    elif step == 0:
        base = "before"
    else:
        base = "after" if step == final else f"step{step}"
    return base + ("_t1" if prefix.endswith("_t1") else "")


def _label(tag: str) -> str:
    base = tag.removesuffix("_t1")
    text = {"before": "before", "after_sft": "after SFT", "after": "after RL"}.get(base) or base.replace("step", "step ")
    return text + (" (T=1)" if tag.endswith("_t1") else "")


def eval_stages(metrics: list[dict], final_step: int) -> list[EvalStage]:
    """Every evaluation logged in metrics.jsonl, in order (step, then before / after SFT)."""
    out = []
    for row in metrics:
        step = int(row.get("step", 0))
        for prefix in reversed(_PREFIXES):  # eval, eval_t1, eval_sft, eval_sft_t1
            scalars = {k.split("/", 1)[1]: float(v) for k, v in row.items() if k.split("/", 1)[0] == prefix and isinstance(v, (int, float))}
            if "accuracy" in scalars:
                tag = _tag(prefix, step, final_step)
                out.append(EvalStage(tag=tag, label=_label(tag), step=step, scalars=scalars))
    return out


def _curves(metrics: list[dict]) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    for row in metrics:
        step = row.get("step", 0)
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                out.setdefault(k, []).append([step, round(float(v), 6)])
    return out


class Tokenizers:
    """One TokenText per tokenizer file, shared by the runs of a report."""

    def __init__(self) -> None:
        self._by_path: dict[Path, TokenText] = {}

    def get(self, run: RunInfo) -> TokenText | None:
        path = find_tokenizer(run.path, run.cfg.model.name)
        if path is None:
            run.notes.append(
                f"no tokenizer found for model {run.cfg.model.name!r} (looked in final_model/ and the model's directory or cache): "
                "texts are shown without their tokens, log-probs and entropies"
            )
            return None
        if path not in self._by_path:
            self._by_path[path] = TokenText(path)
        return self._by_path[path]


def load_run(run_dir: Path, index: int, opts: ReportSection, tokenizers: Tokenizers | None = None) -> RunView:
    run = read_run(run_dir)
    tok = (tokenizers or Tokenizers()).get(run)
    cfg = run.cfg
    prompts: dict[str, str] = {}

    def remember_prompt(t: Trajectory) -> None:
        if t.task_id not in prompts:
            prompts[t.task_id] = tok.decode(t.prompt_token_ids) if tok is not None else ""

    # training rollouts and trees of the picked steps
    files = _step_files(run_dir / "trajectories")
    tree_files = _step_files(run_dir / "trees")
    steps: list[StepSample] = []
    tasks_total = 0
    for step in pick_steps(list(files), opts.steps):
        try:
            trajs = list(read_jsonl(files[step]))
        except (ValueError, OSError) as e:
            run.notes.append(f"{files[step].relative_to(run_dir)} skipped: {e}")
            continue
        groups = group_by_task(trajs)
        tasks_total = max(tasks_total, len(groups))
        trees: dict[str, RolloutTree] = {}
        if step in tree_files:
            try:
                trees = {t.task_id: t for t in read_trees(tree_files[step])}
            except (ValueError, OSError) as e:
                run.notes.append(f"{tree_files[step].relative_to(run_dir)} skipped: {e}")
        sample = StepSample(step=step, tasks_total=len(groups), trajectories=[])
        for tid in pick_tasks(groups, opts.tasks):
            tree = trees.get(tid)
            crit = critical_nodes(tree) if tree is not None else set()
            keys = {}
            for t in groups[tid]:
                remember_prompt(t)
                leaf = tree.leaf_for_sample(t.sample) if tree is not None else None
                key = f"{index}/train/{step}/{tid}/{t.sample}"
                keys[t.sample] = key
                credit = step_credit(leaf, cfg.algo.clip_low, crit)
                sample.trajectories.append(trajectory_view(t, key, "train", step, tok, credit, cfg.algo.mask_truncated))
            if tree is not None:
                sample.trees.append(tree_view(tree, step, tok, cfg.algo.clip_low, cfg.algo.adv_eps, keys.get))
        steps.append(sample)

    # evaluations: the same held-out tasks at every stage, for side-by-side reading
    evals = eval_stages(run.metrics, cfg.train.steps)
    eval_groups: dict[str, dict[str, list[Trajectory]]] = {}
    for d in sorted(run_dir.glob("eval_*")):
        found = _step_files(d)
        if not found:
            continue
        tag = d.name.removeprefix("eval_")
        try:  # a run resumed with more steps evaluated "after" twice: the newest is the run's
            eval_groups[tag] = group_by_task(list(read_jsonl(found[max(found)])))
        except (ValueError, OSError) as e:
            run.notes.append(f"{d.name}/ skipped: {e}")
    order = [s.tag for s in evals if s.tag in eval_groups] + sorted(t for t in eval_groups if t not in {s.tag for s in evals})
    greedy = [t for t in order if not t.endswith("_t1")] or order
    chosen = pick_eval_tasks(eval_groups[greedy[0]], eval_groups[greedy[-1]], opts.eval_tasks) if greedy else []
    eval_trajs: dict[str, list[TrajectoryView]] = {}
    n_eval_tasks = max((len(g) for g in eval_groups.values()), default=0)
    for tag in order:
        views = []
        for tid in chosen:
            for t in eval_groups[tag].get(tid, []):
                remember_prompt(t)
                views.append(trajectory_view(t, f"{index}/{tag}/0/{tid}/{t.sample}", tag, 0, tok))
        eval_trajs[tag] = views

    note = (
        f"Embedded: the rollouts of {len(steps)} of {len(files)} training steps (up to {opts.tasks} of the "
        f"{tasks_total} tasks of each, with all their samples) and {len(chosen)} of {n_eval_tasks} held-out tasks "
        f"for each of {len(eval_trajs)} evaluations. Everything is in the run directory; embed more with "
        "tirl report --steps N --tasks N --eval-tasks N."
    )
    return RunView(
        name=run.name,
        path=str(run_dir),
        label=f"{run.recipe} · {cfg.model.name} · {cfg.task.name}",
        status=run.status,
        config_yaml=(run_dir / "config.yaml").read_text(errors="replace"),
        metrics=_curves(run.metrics),
        evals=evals,
        steps=steps,
        eval_trajectories=eval_trajs,
        prompts=prompts,
        steps_total=cfg.train.steps,
        sample_note=note,
        notes=run.notes,
    )
