"""Scripted trajectories: turn a protocol-neutral ``Script`` (an expert's or the reference
solver's solution) into a real Trajectory of EXPERT and TOOL segments.

The script's code is executed by the same tools the policy uses, so the observations it
carries are genuine, and its text goes through the same tokenizer path as rollouts (each
segment tokenised on its own, exactly as the agent loop appends them).
"""

from __future__ import annotations

import uuid

from tirl.protocol.base import Protocol
from tirl.rollout.agent_loop import _run_call, trajectory_metrics
from tirl.types import Origin, Script, Segment, Step, StopReason, Task, Trajectory


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


async def script_trajectory(task: Task, script: Script, protocol: Protocol, tokenizer, sample: int = 0) -> Trajectory:
    traj = Trajectory(task_id=task.id, sample=sample, prompt_token_ids=protocol.prompt_ids(tokenizer, task), gold=task.answer)
    session = f"script/{task.id}/{uuid.uuid4().hex[:8]}"
    try:
        for step in script.steps:
            traj.segments.append(Segment(Origin.EXPERT, _ids(tokenizer, protocol.render_step(step))))
            call = protocol.script_call(step)
            if call is None:
                traj.steps.append(Step(action_segment=len(traj.segments) - 1))
                continue
            obs = await _run_call(call, protocol.tools, protocol, session)
            traj.segments.append(Segment(Origin.TOOL, _ids(tokenizer, protocol.observation_text(call, obs))))
            traj.steps.append(Step(len(traj.segments) - 2, call, obs, len(traj.segments) - 1))
            if obs.infra_error:
                traj.stop_reason = StopReason.ERROR
                break
        else:
            final = _ids(tokenizer, protocol.render_final(script))
            if protocol.final_turn_ends_with_eos:
                final.append(tokenizer.eos_token_id)
            traj.segments.append(Segment(Origin.EXPERT, final))
            traj.steps.append(Step(action_segment=len(traj.segments) - 1))
            traj.stop_reason = StopReason.ANSWER
    finally:
        for t in protocol.tools.values():
            await t.close_session(session)
    traj.text = tokenizer.decode(traj.completion_ids, skip_special_tokens=False)
    traj.answer = protocol.extract_answer(protocol.render_final(script))
    traj.metrics.update(trajectory_metrics(traj))
    return traj
