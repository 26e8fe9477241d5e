"""The reward set a run optimises, built from the config.

``default_rewards``: the outcome reward (format violation → ``format_violation``, else the
verifier's score), DAPO's soft overlong penalty when enabled, and zero-weight metrics
(``correct``, ``format_ok``).

``config_rewards`` adds what the ``reward`` section asks for. The main term is one of: the
outcome (default), ET-Agent's efficiency-shaped reward (``reward.efficiency.enabled``; it
already contains the format term) or AutoTraj's reward-model reward (``reward.rm.path``). Both
replace ``outcome`` under their own name so a log says which reward was optimised. OTC and the
Tool-Star multi-tool bonus are added terms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tirl.protocol.base import Protocol
from tirl.rewards.base import RewardSpec
from tirl.rewards.efficiency import et_agent_reward, multi_tool_bonus, otc_reward
from tirl.rewards.format import format_ok, outcome
from tirl.rewards.outcome import correctness
from tirl.rewards.overlong import soft_overlong
from tirl.rewards.rm import TrajectoryScorer, rm_outcome
from tirl.rewards.schedule import Progress

if TYPE_CHECKING:
    from tirl.config import RewardConfig


def default_rewards(protocol: Protocol, format_violation: float = -1.0, overlong_buffer: int = 0, max_len: int = 0) -> list[RewardSpec]:
    specs = [RewardSpec("outcome", outcome(protocol, format_violation), 1.0)]
    if overlong_buffer > 0:
        specs.append(RewardSpec("overlong", soft_overlong(max_len, overlong_buffer), 1.0))
    specs += [RewardSpec("correct", correctness, 0.0), RewardSpec("format_ok", format_ok(protocol), 0.0)]
    return specs


def config_rewards(
    rc: RewardConfig,
    protocol: Protocol,
    max_len: int,
    progress: Progress | None = None,
    rm_scorer: TrajectoryScorer | None = None,
) -> list[RewardSpec]:
    """The reward specs of a ``reward`` config section. ``progress`` drives ET-Agent's σ decay;
    ``rm_scorer`` is the loaded reward model when ``reward.rm.path`` is set."""
    specs = default_rewards(protocol, rc.format_violation, rc.overlong_buffer, max_len)
    eff = rc.efficiency
    if eff.enabled and rc.rm.path:
        raise ValueError("reward.efficiency and reward.rm both replace the outcome reward; enable one of them")
    if eff.enabled:
        fn = et_agent_reward(protocol, eff.sigma_tool, eff.sigma_len, eff.scale, rc.format_violation, progress, eff.decay)
        specs[0] = RewardSpec("efficiency", fn, 1.0)
        specs.append(RewardSpec("outcome", outcome(protocol, rc.format_violation), 0.0))  # logged, not optimised
    elif rc.rm.path:
        if rm_scorer is None:
            raise ValueError(f"reward.rm.path={rc.rm.path!r} is set but no reward model was loaded")
        specs[0] = RewardSpec("rm_outcome", rm_outcome(protocol, rm_scorer, rc.rm.weight, rc.format_violation), 1.0)
        specs.append(RewardSpec("outcome", outcome(protocol, rc.format_violation), 0.0))
    if rc.otc_alpha > 0:
        specs.append(RewardSpec("otc", otc_reward(rc.otc_alpha), 1.0))
    if rc.multi_tool_bonus > 0:
        specs.append(RewardSpec("multi_tool", multi_tool_bonus(rc.multi_tool_bonus), 1.0))
    return specs
