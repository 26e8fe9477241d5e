"""One optimiser step on a batch of TrainRows: micro-batched forward/backward with gradients
accumulated over the whole batch (aggregation uses the batch's global token and sequence
counts, so the result does not depend on the micro-batch size), gradient clipping, AdamW step.

Old log-probs: with one pass per batch (``ppo_epochs=1``) the trainer's own forward pass *is*
the recomputation — its detached log-probs are the old log-probs, so the ratio starts at 1 —
and no second forward is spent. With several passes they are recomputed once, without
gradient, before the first pass. Either way the gap to the engine's sampling log-probs is
logged (it catches stale weights and sampler/trainer mismatch; it is not zero under bf16 and
is large by design when sampling at a temperature other than 1).

Off-policy term (``algo.offpolicy_coef > 0``; E3-TIR's expert-guided sample, ALGORITHMS.md §5):
expert tokens (``offpolicy = 1``) that are not detached take ``tirl.algo.offpolicy``'s loss with
their row's advantage instead of the PPO ratio, and count in the same aggregation normaliser as
the policy tokens (LUFFY, arXiv 2504.14945, Eq. 6: one 1/Z over on- and off-policy tokens).

Stale rollouts (``behaviour_cap``, ``cluster.max_staleness > 0``; ALGORITHMS.md §10): each policy
token's loss is multiplied by the truncated weight min(pi_prox / pi_behaviour, cap) of decoupled
PPO, the rows' engine log-probs being pi_behaviour.

Data-parallel (``dp``, ``tirl.train.parallel``): the rows are this rank's shard; the counts the
aggregation divides by are summed over the ranks first, so each rank's loss is its share of the
batch loss, the gradients are summed over the ranks (DDP) or reduce-scattered by FSDP, and the
returned statistics are the whole batch's on every rank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tirl.algo import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES, BatchCounts, LossConfig, LossInput, behaviour_weight
from tirl.algo.offpolicy import regularized_is
from tirl.config import AlgoConfig, OptimConfig
from tirl.models.attention import training_attention
from tirl.models.checkpointing import checkpointed_layers
from tirl.train.logprobs import first_scored_position, shared_prefixes, token_logprobs
from tirl.train.rows import collate
from tirl.types import TrainRow

if TYPE_CHECKING:
    from tirl.train.parallel import DataParallel


class NonFiniteUpdate(FloatingPointError):
    """The policy loss or its gradient is NaN/inf: the step is not taken."""


@dataclass
class UpdateStats:
    loss: float = 0.0
    pg_loss: float = 0.0
    kl: float = 0.0
    clip_frac: float = 0.0
    entropy: float = 0.0
    grad_norm: float = 0.0
    logp_gap_engine: float = 0.0
    """Mean |trainer log-prob - engine sampling log-prob| over trained tokens."""
    ratio_max: float = 1.0
    n_tokens: int = 0
    n_rows: int = 0
    offpolicy_loss: float = 0.0
    """The off-policy term's share of ``loss`` (already weighted)."""
    offpolicy_weight: float = 0.0
    """Mean regularised importance weight f(p) over the off-policy tokens."""
    n_offpolicy_tokens: int = 0
    behaviour_weight: float = 1.0
    """Mean truncated importance weight pi_prox / pi_behaviour over the policy tokens (decoupled
    PPO, when rollouts may be stale; 1 otherwise)."""
    behaviour_truncated: float = 0.0
    """Share of policy tokens whose importance weight was cut to the cap."""


def _prefix_len(rows: Sequence[TrainRow]) -> int:
    """The leading tokens a task's rows share and a pass runs once (0 for a single row): their
    common prefix, below the first trained token (what ``shared_prefixes`` will find)."""
    if len(rows) < 2:
        return 0
    first = min((next((t for t, m in enumerate(r.loss_mask) if m > 0), len(r)) for r in rows), default=0)
    n = min(len(r) for r in rows)
    ref = rows[0].input_ids
    for r in rows[1:]:
        ids = r.input_ids
        n = next((t for t in range(n) if ids[t] != ref[t]), n)
    return max(0, min(n, first - 1))


def _cost(rows: Sequence[TrainRow], prefix: dict[str, int] | None = None) -> int:
    """Tokens a forward over ``rows`` runs: rows x the longest row (padding included), or, with
    the tasks' shared prefix lengths, each task's prefix once plus rows x the longest remainder."""
    if not rows:
        return 0
    if prefix is None:
        return len(rows) * max(len(r) for r in rows)
    tasks = {r.task_id for r in rows}
    return sum(prefix.get(t, 0) for t in tasks) + len(rows) * max(len(r) - prefix.get(r.task_id, 0) for r in rows)


def _chunks(rows: Sequence[TrainRow], size: int, max_tokens: int | None = None, prefix: dict[str, int] | None = None) -> list[list[TrainRow]]:
    """Consecutive runs of at most ``size`` rows and ``max_tokens`` run tokens (a row longer
    than the budget goes alone)."""
    out: list[list[TrainRow]] = []
    for r in rows:
        if out and len(out[-1]) < size and (max_tokens is None or _cost(out[-1] + [r], prefix) <= max_tokens):
            out[-1].append(r)
        else:
            out.append([r])
    return out


def micro_batches(rows: Sequence[TrainRow], size: int, share_prefix: bool, max_tokens: int | None = None) -> list[list[TrainRow]]:
    """Rows of similar length share a micro-batch (less padding, same gradient: the sum is
    order-free); a micro-batch holds at most ``size`` rows and runs at most ``max_tokens`` tokens
    (padding included, a shared prefix counted once). With ``share_prefix``, a task's rows (a
    group, a tree's leaves) stay together so their common prompt runs once
    (``token_logprobs(prefix=...)``), and whole tasks are packed into micro-batches (a task over
    the limits is split); rows without a task id are pooled. Several tasks per micro-batch keep
    the matrices large, which CPU matmuls need (``bench/update_layout.py``)."""
    if not share_prefix:
        return _chunks(sorted(rows, key=len), size, max_tokens)
    by_task: dict[str, list[TrainRow]] = {}
    singles: list[TrainRow] = []
    for r in rows:
        if r.task_id:
            by_task.setdefault(r.task_id, []).append(r)
        else:
            singles.append(r)
    prefix = {t: _prefix_len(rs) for t, rs in by_task.items()}
    pieces = [c for rs in by_task.values() for c in _chunks(sorted(rs, key=len), size, max_tokens, prefix)]
    pieces += [[r] for r in sorted(singles, key=len)]
    out: list[list[TrainRow]] = []
    for piece in sorted(pieces, key=lambda p: max(len(r) for r in p)):  # similar lengths together
        joined = out[-1] + piece if out else piece
        if out and len(joined) <= size and (max_tokens is None or _cost(joined, prefix) <= max_tokens):
            out[-1] = joined
        else:
            out.append(list(piece))
    return out


def policy_update(
    policy,
    optimizer: torch.optim.Optimizer,
    rows: Sequence[TrainRow],
    algo: AlgoConfig,
    optim: OptimConfig,
    pad_id: int,
    norm_constant: float,
    dp: DataParallel | None = None,
    behaviour_cap: float | None = None,
) -> UpdateStats:
    """One optimiser step on ``rows``. With ``dp`` (a data-parallel update, ``tirl.train.parallel``)
    ``rows`` are this rank's shard of the batch: the counts the aggregation divides by, the
    gradient and the returned statistics are the whole batch's, the same on every rank.
    ``behaviour_cap`` (rollouts may be stale, ``cluster.max_staleness > 0``): every policy
    token's loss is weighted by min(pi_prox / pi_behaviour, cap), the rows' ``old_logprob``
    being the behaviour log-probs (``tirl.algo.decoupled``); None: no weight (on-policy)."""
    with training_attention(policy.model, optim.attention), checkpointed_layers(policy.model, optim.activation_checkpointing):
        return _policy_update(policy, optimizer, rows, algo, optim, pad_id, norm_constant, dp, behaviour_cap)


def _padding_row(pad_id: int) -> TrainRow:
    """A row with nothing to train: the pass a rank with fewer micro-batches runs so that every
    rank runs the same number (FSDP's collectives); it adds zero to every gradient."""
    z = [0.0, 0.0]
    return TrainRow([pad_id, pad_id], z, z, z, z, z, z, z)


def _policy_update(
    policy,
    optimizer: torch.optim.Optimizer,
    rows: Sequence[TrainRow],
    algo: AlgoConfig,
    optim: OptimConfig,
    pad_id: int,
    norm_constant: float,
    dp: DataParallel | None = None,
    behaviour_cap: float | None = None,
) -> UpdateStats:
    st = UpdateStats(n_rows=len(rows) if dp is None else int(dp.sum([len(rows)])[0]))
    model = policy.model
    # FSDP runs every pass as collectives, so each micro-batch is exactly one forward: no shared-prefix pass
    share_prefix = optim.share_prefix and not (dp is not None and dp.pad_passes)

    # on-policy tokens only: expert tokens never take the PPO ratio, detached tokens take no gradient
    def train_mask(b):
        return b["mask_BT"] * (1 - b["offpolicy_BT"]) * (1 - b["detach_BT"])

    mbs = micro_batches(rows, optim.micro_batch_size, share_prefix, optim.micro_batch_tokens)
    if dp is not None and dp.pad_passes:
        mbs += [[_padding_row(pad_id)] for _ in range(int(dp.max(len(mbs))) - len(mbs))]
    batches = [collate(mb, pad_id) for mb in mbs]
    masks = [train_mask(b) for b in batches]
    # expert tokens trained by the off-policy term (disjoint from the on-policy mask)
    off_masks = [b["offpolicy_BT"] * (1 - b["detach_BT"]) if algo.offpolicy_coef > 0 else torch.zeros_like(m) for b, m in zip(batches, masks)]
    both = [m + mo for m, mo in zip(masks, off_masks)]
    local = [float(sum(m.sum() for m in both)), float(sum((m.sum(-1) > 0).sum() for m in both))]
    local += [float(sum(m.sum() for m in masks)), float(sum(m.sum() for m in off_masks))]
    n_tokens, n_seqs, n_policy, n_off = local if dp is None else dp.sum(local)  # the whole batch's counts
    counts = BatchCounts(n_tokens=n_tokens, n_seqs=n_seqs, norm_constant=norm_constant)
    st.n_tokens = int(n_policy)
    st.n_offpolicy_tokens = int(n_off)
    if counts.n_tokens == 0:
        return st
    firsts = [first_scored_position(m) for m in both]
    # each task's common prompt runs once per micro-batch (None when sharing is off or nothing is shared)
    prefixes = [
        shared_prefixes(b["ids_BT"], b["attn_BT"], m, [r.task_id for r in mb]) if share_prefix else None for b, m, mb in zip(batches, both, mbs)
    ]
    engine_logp = [b["old_logp_BT"].clone() for b in batches]
    if algo.ppo_epochs > 1:
        with torch.no_grad():
            for b, f, p in zip(batches, firsts, prefixes):
                b["old_logp_BT"], _ = token_logprobs(model, b["ids_BT"], b["attn_BT"], bf16=optim.bf16, first=f, prefix=p)
    ref_logps = []
    if algo.kl_coef > 0:
        with torch.no_grad(), policy.reference() as ref:
            ref_logps = [
                token_logprobs(ref, b["ids_BT"], b["attn_BT"], bf16=optim.bf16, first=f, prefix=p)[0] for b, f, p in zip(batches, firsts, prefixes)
            ]
    loss_fn, agg = POLICY_LOSSES[algo.loss], AGGREGATIONS[algo.aggregation]
    params = policy.trainable_parameters()
    for epoch in range(algo.ppo_epochs):
        optimizer.zero_grad(set_to_none=True)
        tot = {"loss": 0.0, "pg": 0.0, "kl": 0.0, "clip": 0.0, "ent": 0.0, "gap": 0.0, "rmax": 0.0, "off": 0.0, "fp": 0.0, "isw": 0.0, "iscut": 0.0}
        for i, (b, m) in enumerate(zip(batches, masks)):
            mo = off_masks[i]
            logp, ent = token_logprobs(model, b["ids_BT"], b["attn_BT"], with_entropy=True, bf16=optim.bf16, first=firsts[i], prefix=prefixes[i])
            old = b["old_logp_BT"] if algo.ppo_epochs > 1 else logp.detach()
            lcfg = LossConfig(algo.dual_clip, algo.offpolicy_gamma)
            out = loss_fn(LossInput(logp, old, b["adv_BT"], m, b["clip_low_BT"], b["clip_high_BT"]), lcfg)
            pol_loss_BT = out.loss_BT
            if behaviour_cap is not None:  # decoupled PPO: the ratio is to the proximal policy (``old``), w to the behaviour one
                w_BT, cut_BT = behaviour_weight(old, engine_logp[i], m, behaviour_cap)
                pol_loss_BT = pol_loss_BT * w_BT
                tot["isw"] += float((w_BT * m).sum())
                tot["iscut"] += float(cut_BT.sum())
            if st.n_offpolicy_tokens:
                # one per-token loss over both masks, so per-sequence aggregations see each row once
                off = regularized_is(LossInput(logp, old, b["adv_BT"], mo, b["clip_low_BT"], b["clip_high_BT"]), lcfg)
                pg = agg(torch.where(mo > 0, algo.offpolicy_coef * off.loss_BT, pol_loss_BT), m + mo, counts)
                tot["off"] += agg(algo.offpolicy_coef * off.loss_BT, mo, counts).item()
                tot["fp"] += float((off.ratio_BT * mo).sum())
            else:
                pg = agg(pol_loss_BT, m, counts)
            loss = pg
            if algo.kl_coef > 0:
                kl = agg(KL_ESTIMATORS[algo.kl_estimator](logp, ref_logps[i]), m, counts)
                loss = loss + algo.kl_coef * kl
                tot["kl"] += kl.item()
            loss.backward()
            tot["loss"] += loss.item()
            tot["pg"] += pg.item()
            tot["clip"] += float(out.clipped_BT.float().sum())
            tot["ent"] += float((ent * m).sum())
            if epoch == 0:
                tot["gap"] += float(((logp.detach() - engine_logp[i]).abs() * m).sum())
            tot["rmax"] = max(tot["rmax"], float((out.ratio_BT * m).max()))
        if dp is not None:  # the whole batch's gradient and statistics on every rank
            dp.reduce_gradients(params)
            keys = [k for k in tot if k != "rmax"]
            tot = dict(zip(keys, dp.sum([tot[k] for k in keys]))) | {"rmax": dp.max(tot["rmax"])}
        st.grad_norm = _norm_value(torch.nn.utils.clip_grad_norm_(params, optim.grad_clip))
        if not (math.isfinite(st.grad_norm) and math.isfinite(tot["loss"])):
            optimizer.zero_grad(set_to_none=True)  # the weights stay as they were
            raise NonFiniteUpdate(
                f"non-finite {'loss' if not math.isfinite(tot['loss']) else 'gradient'} "
                f"(loss {tot['loss']}, gradient norm {st.grad_norm}); the weights were not updated"
            )
        optimizer.step()
        if epoch == 0:
            st.logp_gap_engine = tot["gap"] / max(st.n_tokens, 1)
            if behaviour_cap is not None:
                st.behaviour_weight = tot["isw"] / max(st.n_tokens, 1)
                st.behaviour_truncated = tot["iscut"] / max(st.n_tokens, 1)
    st.loss, st.pg_loss, st.kl = tot["loss"], tot["pg"], tot["kl"]
    st.clip_frac = tot["clip"] / max(st.n_tokens, 1)
    st.entropy = tot["ent"] / max(st.n_tokens, 1)
    st.ratio_max = tot["rmax"]
    st.offpolicy_loss = tot["off"]
    st.offpolicy_weight = tot["fp"] / max(st.n_offpolicy_tokens, 1)
    optimizer.zero_grad(set_to_none=True)
    return st


def _norm_value(norm: torch.Tensor) -> float:
    """The gradient norm as a float; FSDP's parameters make it a DTensor, whose value is the
    full (all ranks') norm."""
    full = getattr(norm, "full_tensor", None)
    return float(full() if full is not None else norm)
