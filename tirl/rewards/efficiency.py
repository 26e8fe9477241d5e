"""Efficiency rewards: correct answers with fewer tool calls and shorter reasoning.

All three are group-aware rewards (``fn(group, task) -> list[float]``); the group is the task's
scorable trajectories (``tirl.rewards.compose`` leaves infrastructure failures out).

**ET-Agent behaviour calibration** (Chen, Dong, Dou 2026, arXiv 2601.06860, §4.2.3 Eq. 1-3;
ALGORITHMS.md §6):

    R_i = R_corr,i * f_tool,i * f_len,i + R_format,i
    f_tool,i = 2 / (1 + exp(σ_tool * (v_i - mean_G v)))      v = tool calls (malformed ones too: they cost a turn)
    f_len,i  = 2 / (1 + exp(σ_len * z_i))                    z = group z-score of reasoning length

The ``2/(1+e^x)`` form is the released code's (1 at the group mean, range (0, 2)); the paper
prints ``1/(1+e^x)``. ``scale`` selects it (2 default, 1 paper). Reasoning length counts the
model's own tokens (POLICY and EXPERT segments): tool results are excluded as the paper says
(the released code counts the whole response including tool results, which rewards short tool
output, not short reasoning). z uses the population std, and is 0 for every member when all
lengths are equal (as the code does). R_format is ``format_violation`` (−1) when the protocol's
format check fails and 0 otherwise; it is *added*, exactly as in the released code, so a
correct but malformed completion still scores ``R_corr·f·f − 1``. σ decays linearly to 0 over
each round (``tirl.rewards.schedule``): the trainer's ``Progress`` is read at scoring time.

**OTC tool productivity** (Wang et al. 2025, "Acting Less is Reasoning More", OTC-GRPO;
ALGORITHMS.md §8): with ``m`` this trajectory's calls and ``n`` the fewest calls among the
group's correct trajectories, ``f = 2mn/(m+n)`` and ``r_tool = sin(f·π/(2n))`` — 1 at m = n,
falling off on either side. ``m = n = 0`` gives 1. ``n = 0 < m`` (the optimum used no tool but
this one did) takes the paper's ``cos(m·π/(2m + c))`` branch, which falls from 1 towards 0 as
calls are added; ``c`` is a smoothing constant (1). ``R = α · r_tool · correct``; a group with
no correct member scores 0 everywhere (there is no optimum to compare against).

**Tool-Star multi-tool bonus** (Dong et al. 2025, arXiv 2505.16410, §3.3; ALGORITHMS.md §8):
``bonus`` (0.1) when the answer is correct and every tool in ``tools`` (search and python) was
called at least once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tirl.protocol.base import Protocol
from tirl.rewards.base import RewardFn
from tirl.rewards.schedule import Progress, linear_decay
from tirl.rewards.verify import score_answer
from tirl.types import Origin, Task, Trajectory


def reasoning_tokens(traj: Trajectory) -> int:
    """The model's own tokens: every segment but tool output (and the prompt)."""
    return sum(len(s) for s in traj.segments if s.origin in (Origin.POLICY, Origin.EXPERT))


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def zscores(x_G: Sequence[float]) -> list[float]:
    """Group z-scores with the population std (ddof 0); all 0 when the std is 0."""
    mu = _mean(x_G)
    std = math.sqrt(_mean([(x - mu) ** 2 for x in x_G]))
    if std == 0.0:
        return [0.0] * len(x_G)
    return [(x - mu) / std for x in x_G]


def _logistic(x: float, scale: float) -> float:
    """``scale / (1 + exp(x))`` without overflow for large |x|."""
    if x >= 0:
        e = math.exp(-x)
        return scale * e / (1.0 + e)
    return scale / (1.0 + math.exp(x))


def tool_factors(calls_G: Sequence[float], sigma: float, scale: float = 2.0) -> list[float]:
    """ET-Agent Eq. 2: ``scale / (1 + exp(σ (v_i − mean_G v)))``."""
    mu = _mean(calls_G)
    return [_logistic(sigma * (v - mu), scale) for v in calls_G]


def length_factors(lengths_G: Sequence[float], sigma: float, scale: float = 2.0) -> list[float]:
    """ET-Agent Eq. 3: ``scale / (1 + exp(σ z_i))``; z has group mean 0, so z − mean z = z."""
    return [_logistic(sigma * z, scale) for z in zscores(lengths_G)]


def et_agent_reward(
    protocol: Protocol,
    sigma_tool: float = 0.1,
    sigma_len: float = 0.1,
    scale: float = 2.0,
    format_violation: float = -1.0,
    progress: Progress | None = None,
    decay: bool = True,
) -> RewardFn:
    """ET-Agent's efficiency-shaped reward; σ is multiplied by ``linear_decay(progress)`` when
    ``decay`` (read when a group is scored, so the trainer only has to advance ``progress``)."""
    if sigma_tool < 0 or sigma_len < 0:
        raise ValueError(f"ET-Agent σ must be >= 0, got sigma_tool={sigma_tool}, sigma_len={sigma_len}")
    if scale <= 0:
        raise ValueError(f"ET-Agent sigmoid scale must be > 0, got {scale}")

    def fn(group: list[Trajectory], task: Task) -> list[float]:
        factor = linear_decay(progress) if decay else 1.0
        f_tool = tool_factors([t.n_tool_calls for t in group], sigma_tool * factor, scale)
        f_len = length_factors([reasoning_tokens(t) for t in group], sigma_len * factor, scale)
        out = []
        for t, ft, fl in zip(group, f_tool, f_len):
            r_format = format_violation if protocol.format_error(t.text) else 0.0
            out.append(score_answer(task, t.answer) * ft * fl + r_format)
        return out

    return fn


def otc_tool_score(m: int, n: int, c: float = 1.0) -> float:
    """OTC's r_tool for ``m`` calls when the group's best correct trajectory used ``n``."""
    if m < 0 or n < 0:
        raise ValueError(f"tool-call counts must be >= 0, got m={m}, n={n}")
    if n == 0:
        return 1.0 if m == 0 else math.cos(m * math.pi / (2 * m + c))
    f = 2 * m * n / (m + n)
    return math.sin(f * math.pi / (2 * n))


def otc_reward(alpha: float = 1.0, c: float = 1.0) -> RewardFn:
    """OTC-GRPO tool productivity ``α · r_tool(m, n) · correct`` (correct = verifier score)."""

    def fn(group: list[Trajectory], task: Task) -> list[float]:
        correct = [score_answer(task, t.answer) for t in group]
        calls = [t.n_tool_calls for t in group]
        ok = [m for m, s in zip(calls, correct) if s >= 1.0]
        if not ok:
            return [0.0] * len(group)
        n = min(ok)
        return [alpha * otc_tool_score(m, n, c) * s for m, s in zip(calls, correct)]

    return fn


def multi_tool_bonus(bonus: float = 0.1, tools: Sequence[str] = ("search", "python")) -> RewardFn:
    """Tool-Star: ``bonus`` for a correct answer that used every tool in ``tools``."""
    need = set(tools)

    def fn(group: list[Trajectory], task: Task) -> list[float]:
        out = []
        for t in group:
            used = {s.call.name for s in t.steps if s.call is not None and s.call.error is None}
            out.append(bonus if need <= used and score_answer(task, t.answer) >= 1.0 else 0.0)
        return out

    return fn
