"""The ``strategy`` section: how each task's trajectories are sampled and credited
(``tirl.train.strategies``), with the branching strategies' own sub-sections.

``strategy.arpo`` (ALGORITHMS.md §3) is read by ``tirl.rollout.arpo``, ``strategy.elpo`` (§4) by
``tirl.rollout.elpo`` and ``strategy.e3`` (§5) by ``tirl.rollout.e3`` and ``tirl.train.e3``; the
rollout modules import these classes from here, never the other way round.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tirl.config.base import Section


class ARPOConfig(Section):
    """ARPO rollout and credit (the ``strategy.arpo`` section; ALGORITHMS.md §3)."""

    budget: int = Field(16, ge=1)
    """M: trajectories per task, branches included."""
    initial: int = Field(8, ge=1)
    """N: trajectories started from the prompt; the rest of the budget is for branches and top-ups."""
    entropy_tokens: int = Field(20, ge=1)
    """Tokens at the start of a segment whose entropies are summed."""
    base_prob: float = Field(0.5, ge=0.0, le=1.0)
    """Branch probability at dH = 0 (the reference code's threshold 0.5)."""
    entropy_weight: float = Field(0.2, ge=0.0)
    """Weight of dH in the branch probability (normalised by ln|V|, so 0.2 keeps its meaning)."""
    branches_per_step: int = Field(1, ge=1)
    """Branch attempts per running path per tool step (the reference code's beam_size - 1 = 1)."""
    topup_per_round: int = Field(1, ge=1)
    """Fresh samples added per round to a task whose paths have all ended before its budget is
    used (the reference code adds 1, so a top-up can still branch; more finish sooner)."""
    attribution: Literal["soft", "hard"] = "soft"
    """soft: GRPO over all M leaves, each row's tokens take its own leaf's advantage (the
    paper's default and the reference code); hard: a token shared by several branches takes
    the mean of their advantages."""

    @model_validator(mode="after")
    def _initial_within_budget(self) -> ARPOConfig:
        if self.initial > self.budget:
            raise ValueError(f"initial ({self.initial}) must not exceed budget ({self.budget})")
        return self


class ELPOConfig(Section):
    """ELPO rollout and credit (the ``strategy.elpo`` section; ALGORITHMS.md §4)."""

    budget: int = Field(16, ge=1)
    """N_total: trajectories per task, continuations included."""
    buffer: int = Field(3, ge=1)
    """B_max: failures collected before a binary search."""
    x_min: int = Field(1, ge=1)
    """Fewest continuations sampled at a search step."""
    x_max: int = Field(3, ge=1)
    """Most continuations sampled at a search step."""
    beta: float = Field(5.0, ge=0.0)
    """Slope of the sigmoid mapping the entropy gap at a step to its number of continuations."""
    lam: float = Field(0.5, ge=0.0, le=1.0)
    """lambda_tree: weight of the branch-level advantage in A_hier (Eq. 10)."""
    eps_elc: float = Field(0.115, ge=0.0)
    """Added to the lower clip bound on the critical suffix (ELC, §4.3): 0.2 + 0.115 = 0.315."""
    elc_scope: Literal["reference", "failed_branches"] = "reference"
    """reference: ELC on steps t_crit..T of the reference failure (the paper's minimum);
    failed_branches: also on the own steps of its failed continuations sampled at or after t_crit."""

    @model_validator(mode="after")
    def _range(self) -> ELPOConfig:
        if self.x_min > self.x_max:
            raise ValueError(f"x_min ({self.x_min}) must not exceed x_max ({self.x_max})")
        return self


class E3Config(Section):
    """E3-TIR warm-up (the ``strategy.e3`` section; ALGORITHMS.md §5)."""

    expert: str = "arith-reference"
    """Expert source: reference (the task's reference solver, arith or lookup; arith-reference is
    its older name), a .jsonl of trajectories in
    the rollout schema, openai:<endpoint> (a model behind an endpoints entry), or a local model
    (alias, directory or hub id). tirl runs the expert's tool calls, so observations are real."""
    expert_temperature: float = Field(0.0, ge=0.0)
    """Sampling temperature of a model expert (0: greedy)."""
    correct_only: bool = True
    """Use only expert trajectories the verifier scores correct (the others are counted as
    spent expert samples but never used)."""
    max_expert_samples: int = Field(0, ge=0)
    """Expert trajectories the run may obtain (its expert set; each task's is obtained once and
    cached); 0: no limit. Tasks met after the limit get no expert experience."""
    warmup_steps: int = Field(10, ge=0)
    """RL steps of the warm-up; from this step on, training continues with ``after_warmup``."""
    share_start: float = Field(1.0, ge=0.0, le=1.0)
    """Expert share at the first step: the probability that an eligible task gets expert experience."""
    share_schedule: Literal["linear", "constant"] = "linear"
    """How the share changes over the warm-up: linear decay to 0 at warmup_steps, or constant."""
    pass_rate_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """A task is eligible for expert experience while its self-exploration pass rate this step
    is below this."""
    anchors: int = Field(2, ge=1)
    """k: anchor steps per expert trajectory (fewer when it has fewer candidate boundaries)."""
    branches: int = Field(2, ge=1)
    """b: policy continuations per anchor; anchors * branches of the budget go to continuations."""
    entropy_window: int = Field(1, ge=1)
    """Tokens at the start of a step whose policy entropies (mean) score its boundary as an anchor."""
    branching: bool = True
    """Sample continuations from expert anchors; False is the ablation without branching."""
    expert_guided: bool = True
    """Train the full expert trajectory with the off-policy term (and count it in A_global)."""
    alpha: float = Field(0.5, ge=0.0, le=1.0)
    """Hybrid advantage weight: A = alpha * A_global + (1 - alpha) * A_tree."""
    singleton_tree: Literal["global", "zero"] = "global"
    """A_tree of a sample alone in its sub-tree (the expert-guided sample): its A_global, or 0."""
    aagd: Literal["sign", "always", "never"] = "sign"
    """Advantage-aware gradient detaching of tokens shared by several sampled rows (the expert
    prefix of an anchor's continuations): sign: detach when their advantages disagree in sign;
    always: detach every shared copy; never: the ablation without AAGD."""
    filter_zero_variance: bool = True
    """During the warm-up, drop at credit time the tasks whose used samples' rewards are all
    equal (the expert sample counts only with expert_guided); no refill. ``algo.dynamic_sampling``
    is the separate DAPO filter at sampling time, over all leaves, which refills the batch."""
    after_warmup: Literal["flat", "arpo"] = "flat"
    """The strategy after the warm-up: plain GRPO groups (flat) or ARPO branching."""


class StrategyConfig(Section):
    """How each task's trajectories are sampled and credited (``tirl.train.strategies``)."""

    name: Literal["flat", "arpo", "elpo", "e3"] = "flat"
    """flat: rollout.group_size independent samples per task (GRPO family); arpo: entropy-adaptive
    branching after tool calls (ALGORITHMS.md §3); elpo: binary-search error-localisation trees,
    hierarchical advantages and error-localised clipping (ALGORITHMS.md §4); e3: E3-TIR's
    expert-anchored warm-up, then plain GRPO (ALGORITHMS.md §5)."""
    dedupe_prefix: bool = False
    """Train each token shared by several branches of a tree once (its other copies are
    detached) instead of once per root-to-leaf row. Needs per-node credit (elpo, or arpo with
    hard attribution)."""
    save_trees: bool = True
    """Write every step's trees to trees/step_XXXX.jsonl in the run directory."""
    arpo: ARPOConfig = ARPOConfig()
    elpo: ELPOConfig = ELPOConfig()
    e3: E3Config = E3Config()

    @model_validator(mode="after")
    def _credit_fits(self) -> StrategyConfig:
        if self.dedupe_prefix and self.name == "arpo" and self.arpo.attribution == "soft":
            raise ValueError("dedupe_prefix needs per-node credit; with strategy arpo set arpo.attribution=hard")
        return self
