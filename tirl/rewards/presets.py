"""The reward set a run optimises, built from the config: the outcome reward (format violation
→ ``format_violation``, else the verifier's score), DAPO's soft overlong penalty when enabled,
and zero-weight metrics (``correct``, ``format_ok``)."""

from __future__ import annotations

from tirl.protocol.base import Protocol
from tirl.rewards.base import RewardSpec
from tirl.rewards.format import format_ok, outcome
from tirl.rewards.outcome import correctness
from tirl.rewards.overlong import soft_overlong


def default_rewards(protocol: Protocol, format_violation: float = -1.0, overlong_buffer: int = 0, max_len: int = 0) -> list[RewardSpec]:
    specs = [RewardSpec("outcome", outcome(protocol, format_violation), 1.0)]
    if overlong_buffer > 0:
        specs.append(RewardSpec("overlong", soft_overlong(max_len, overlong_buffer), 1.0))
    specs += [RewardSpec("correct", correctness, 0.0), RewardSpec("format_ok", format_ok(protocol), 0.0)]
    return specs
