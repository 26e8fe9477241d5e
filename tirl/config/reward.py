"""The ``reward`` section: which reward terms a run adds up (``tirl.rewards.presets``)."""

from __future__ import annotations

from pydantic import Field

from tirl.config.base import Section


class EfficiencyRewardConfig(Section):
    """ET-Agent's efficiency-shaped reward ``R_corr·f_tool·f_len + R_format`` (ALGORITHMS.md §6,
    arXiv 2601.06860 Eq. 1-3). Replaces the outcome reward when enabled."""

    enabled: bool = False
    sigma_tool: float = Field(0.1, ge=0.0)
    """Initial σ of the tool-count factor (the paper's 0.1; the released yaml has 0.2)."""
    sigma_len: float = Field(0.1, ge=0.0)
    """Initial σ of the reasoning-length factor (the paper's 0.1; the released yaml has 0.5)."""
    decay: bool = True
    """Decay both σ linearly to 0 over the run (one curriculum round = one run's train.steps)."""
    scale: float = Field(2.0, gt=0.0)
    """Numerator of the sigmoid factors: 2 (released code, 1 at the group mean) or 1 (paper)."""


class RMRewardConfig(Section):
    """AutoTraj's reward-model term (ALGORITHMS.md §7): ``R = max(S, S + weight·rm)`` when the
    outcome score S > 0, so the reward model can only add; format violations stay at -1."""

    path: str | None = None
    """Directory of a trained trajectory reward model (``tirl rm train --out``); None disables."""
    weight: float = Field(0.2, ge=0.0)
    batch_size: int = Field(8, ge=1)


class RewardConfig(Section):
    format_violation: float = -1.0
    """Reward of a completion that breaks the protocol's format (ALGORITHMS.md §1)."""
    overlong_buffer: int = Field(0, ge=0)
    """DAPO soft overlong penalty buffer in tokens (0 disables it); the limit is max_response_tokens."""
    efficiency: EfficiencyRewardConfig = EfficiencyRewardConfig()
    rm: RMRewardConfig = RMRewardConfig()
    otc_alpha: float = Field(0.0, ge=0.0)
    """OTC tool-productivity reward ``α·r_tool·correct`` added to the outcome (ALGORITHMS.md §8); 0 disables."""
    multi_tool_bonus: float = Field(0.0, ge=0.0)
    """Tool-Star bonus for a correct answer that used both search and python (ALGORITHMS.md §8: 0.1); 0 disables."""
