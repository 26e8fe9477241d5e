"""Move a trajectory produced under one prompt (a repairer's or refiner's instructions) onto the
task's own prompt, for supervised data: the model text and the genuine tool observations are
kept; the prompt becomes the policy's rendering of the task. The trajectory's own text segments
become EXPERT (off-policy: they were not sampled by the policy from this prompt), which SFT
trains and RL never treats as on-policy. When the producing model's tokenizer differs from the
policy's, each segment is re-tokenised on its own, as scripted trajectories are."""

from __future__ import annotations

from dataclasses import replace

from tirl.protocol.base import Protocol
from tirl.rollout.agent_loop import trajectory_metrics
from tirl.types import Origin, Segment, Task, Trajectory


def model_text(traj: Trajectory, tokenizer) -> str:
    """The model's own text: every segment but tool output, decoded (for quality scores)."""
    ids = [t for s in traj.segments if s.origin in (Origin.POLICY, Origin.EXPERT) for t in s.token_ids]
    return tokenizer.decode(ids, skip_special_tokens=True)


def rebase(traj: Trajectory, task: Task, protocol: Protocol, tokenizer, source_tokenizer=None, sample: int = 0) -> Trajectory:
    """``traj`` on ``task``'s prompt; ``source_tokenizer`` is the tokenizer that produced it
    (None or the same object: token ids are kept as they are)."""
    retok = source_tokenizer is not None and source_tokenizer is not tokenizer
    segments = []
    for s in traj.segments:
        ids = s.token_ids
        if retok:
            ids = list(tokenizer(source_tokenizer.decode(ids, skip_special_tokens=False), add_special_tokens=False)["input_ids"])
        origin = Origin.EXPERT if s.origin is Origin.POLICY else s.origin
        segments.append(Segment(origin, list(ids)))  # behaviour log-probs belong to the other prompt: dropped
    out = Trajectory(
        task_id=task.id,
        sample=sample,
        prompt_token_ids=protocol.prompt_ids(tokenizer, task),
        segments=segments,
        steps=[replace(st) for st in traj.steps],
        answer=traj.answer,
        gold=task.answer,
        stop_reason=traj.stop_reason,
    )
    out.text = tokenizer.decode(out.completion_ids, skip_special_tokens=False)
    out.metrics.update(trajectory_metrics(out))
    return out
