"""The ``rollout`` section: how trajectories are sampled (``tirl.rollout.agent_loop``)."""

from __future__ import annotations

from pydantic import Field

from tirl.config.base import Section


class RolloutConfig(Section):
    """How trajectories are sampled (the ``rollout`` section of the config)."""

    group_size: int = Field(4, ge=1)
    """Samples per task (G)."""
    max_tool_calls: int = Field(4, ge=0)
    """Tool calls allowed per trajectory; a further call stops the trajectory (stop reason tool_cap)."""
    max_response_tokens: int = Field(384, ge=1)
    """Token budget after the prompt: policy and tool tokens together."""
    max_turn_tokens: int = Field(256, ge=1)
    """At most this many tokens per generation call (one assistant turn)."""
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    void_turn_filter: bool = False
    """SimpleTIR (Xue et al. 2025): a turn that ends (EOS) with neither a tool call nor an
    answer is a void turn; it stops the trajectory (stop reason void_turn), whose loss mask is
    then zero. It still counts in group statistics."""
