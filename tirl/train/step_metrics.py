"""The metrics of one RL step that are plain functions of its results: the sampled trajectories'
(rewards, tool use, stop reasons, throughput) and the update's (``UpdateStats``)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from tirl.train.update import UpdateStats
from tirl.types import Trajectory


def rollout_metrics(trajs: list[Trajectory], wall: float, generated: int) -> dict[str, float]:
    if not trajs:
        return {"rollout/n": 0.0}
    n = len(trajs)
    calls = [s for t in trajs for s in t.steps if s.call is not None]
    m = {
        "rollout/n": float(n),
        "reward/mean": sum(t.reward for t in trajs) / n,
        "reward/std": float(np.std([t.reward for t in trajs])),
        "reward/accuracy": sum(t.rewards.get("correct", 0.0) for t in trajs) / n,
        "reward/format_ok": sum(t.rewards.get("format_ok", 0.0) for t in trajs) / n,
        "rollout/tool_calls": len(calls) / n,
        "rollout/tool_use_rate": sum(1 for t in trajs if t.n_tool_calls) / n,
        "rollout/tool_success": sum(1 for s in calls if s.observation and s.observation.ok) / max(len(calls), 1),
        "rollout/policy_tokens": sum(t.n_policy_tokens for t in trajs) / n,
        "rollout/tokens_per_s": generated / wall if wall > 0 else 0.0,
    }
    for reason, k in Counter(t.stop_reason.value for t in trajs if t.stop_reason).items():
        m[f"stop/{reason}"] = k / n
    return m


def update_metrics(stats: UpdateStats, adv: torch.Tensor, seconds: float, behaviour_weighted: bool) -> dict[str, float]:
    m = {
        "adv/mean": float(adv.mean()),
        "adv/std": float(adv.std()) if len(adv) > 1 else 0.0,
        "adv/zero_frac": float((adv.abs() < 1e-8).float().mean()),
        "loss/total": stats.loss,
        "loss/pg": stats.pg_loss,
        "loss/kl": stats.kl,
        "policy/clip_frac": stats.clip_frac,
        "policy/entropy": stats.entropy,
        "policy/grad_norm": stats.grad_norm,
        "policy/logp_gap_engine": stats.logp_gap_engine,
        "policy/ratio_max": stats.ratio_max,
        "train/tokens": float(stats.n_tokens),
        "train/rows": float(stats.n_rows),
        "time/update_s": seconds,
    }
    if behaviour_weighted:
        m |= {"policy/behaviour_weight": stats.behaviour_weight, "policy/behaviour_truncated": stats.behaviour_truncated}
    if stats.n_offpolicy_tokens:
        m |= {
            "loss/offpolicy": stats.offpolicy_loss,
            "policy/offpolicy_weight": stats.offpolicy_weight,
            "train/offpolicy_tokens": float(stats.n_offpolicy_tokens),
        }
    return m
