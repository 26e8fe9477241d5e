"""Rollout trees → TrainRows: the one place that lays per-token training arrays over the ids.

``flatten`` makes one row per root-to-leaf path of a tree; a flat group is a tree whose only
branching node is the root, so GRPO-family groups take the same path as ARPO, ELPO and E3-TIR
trees. The ids are the leaf trajectory's own (prompt + segments, never re-tokenised text); the
loss mask comes from ``tirl.rollout.masks.loss_mask`` (the one function that decides what is
trained), so tool and prompt tokens are never trained; advantages are zero wherever the mask is.

Credit comes in per node (ELPO's hierarchical advantage, ARPO's hard attribution: every token
of a step gets its node's value) or per leaf (GRPO and ARPO's soft attribution, E3-TIR: every
token of a row gets its leaf's value). With ``dedupe_prefix`` a token shared by several rows is
trained in exactly one of them (the first row, in leaf order, where it is trainable); its other
copies get ``detach = 1`` (the loss, the token count and the aggregation skip them, see
``tirl.train.update``) while ``loss_mask`` keeps saying which tokens are the policy's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from tirl.rollout.masks import loss_mask
from tirl.types import Origin, RolloutTree, TrainRow, Trajectory


def lay_row(
    traj: Trajectory, mask_T: list[float], advantage_T: Sequence[float], clip_low_T: list[float], clip_high: float, detach_T: list[float]
) -> TrainRow:
    """A trajectory's row from its per-token arrays: the behaviour log-probs and the off-policy
    flags come from its segments (EXPERT tokens are off-policy), the advantage is zeroed where
    ``mask_T`` is."""
    old = [0.0] * len(traj.prompt_token_ids)
    off = [0.0] * len(traj.prompt_token_ids)
    for seg in traj.segments:
        old.extend(seg.logprobs if seg.logprobs is not None and len(seg.logprobs) == len(seg) else [0.0] * len(seg))
        off.extend([1.0 if seg.origin is Origin.EXPERT else 0.0] * len(seg))
    ids = traj.token_ids
    return TrainRow(
        input_ids=list(ids),
        loss_mask=mask_T,
        advantage=[a * m for a, m in zip(advantage_T, mask_T)],
        old_logprob=old,
        clip_low=clip_low_T,
        clip_high=[clip_high] * len(ids),
        offpolicy=off,
        detach=detach_T,
        task_id=traj.task_id,
        sample=traj.sample,
    )


def trajectory_row(traj: Trajectory, advantage: float, clip_low: float, clip_high: float, mask_truncated: bool = False) -> TrainRow:
    """One trajectory on its own, its scalar advantage on every trained token."""
    n = len(traj.token_ids)
    mask = [float(m) for m in loss_mask(traj, mask_truncated=mask_truncated)]
    return lay_row(traj, mask, [advantage] * n, [clip_low] * n, clip_high, [0.0] * n)


def flatten(
    tree: RolloutTree,
    advantage: Mapping[str, float],
    *,
    per_leaf: bool = False,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    clip_low_nodes: Mapping[str, float] | None = None,
    dedupe_prefix: bool = False,
    mask_truncated: bool = False,
) -> list[TrainRow]:
    """One TrainRow per leaf (root-to-leaf ids, leaf order).

    ``advantage`` maps node ids to values: with ``per_leaf`` every token of a row gets its
    leaf's value (shared tokens take each row's own value); otherwise every token of a step gets
    its node's value (every non-root node on a path must have one). ``clip_low_nodes`` overrides
    ``clip_low`` on the tokens of the nodes it names (ELPO's error-localised clipping).
    ``dedupe_prefix`` trains each shared token once (the other copies are detached); it needs
    node values, since a single trained copy cannot carry each row's own value.
    """
    if dedupe_prefix and per_leaf:
        raise ValueError(
            "dedupe_prefix trains each shared token once, so it needs per-node advantages (e.g. ARPO's hard attribution), not per-leaf ones"
        )
    clip_low_nodes = clip_low_nodes or {}
    claimed: set[int] = set()
    rows = []
    for leaf in tree.leaves():
        tr = leaf.trajectory
        mask = [float(m) for m in loss_mask(tr, mask_truncated=mask_truncated)]
        adv: list[float] = []
        low: list[float] = []
        detach: list[float] = []
        if per_leaf and leaf.id not in advantage:
            raise KeyError(f"tree of task {tree.task_id!r}: no advantage for leaf {leaf.id!r}")
        for node in leaf.path():
            n = len(node.tokens)
            if node is tree.root:
                value = 0.0
            elif per_leaf:
                value = advantage[leaf.id]
            elif node.id in advantage:
                value = advantage[node.id]
            else:
                raise KeyError(f"tree of task {tree.task_id!r}: no advantage for node {node.id!r}")
            start = len(adv)
            adv.extend([float(value)] * n)
            low.extend([float(clip_low_nodes.get(node.id, clip_low))] * n)
            if dedupe_prefix and node is not tree.root and id(node) in claimed:
                detach.extend([1.0] * n)
            else:
                detach.extend([0.0] * n)
                if any(mask[start : start + n]):
                    claimed.add(id(node))
        if len(adv) != len(tr.token_ids):
            raise ValueError(f"tree of task {tree.task_id!r}: leaf {leaf.id!r} path has {len(adv)} tokens, its trajectory {len(tr.token_ids)}")
        rows.append(lay_row(tr, mask, adv, low, float(clip_high), detach))
    return rows


def collate(rows: Sequence[TrainRow], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad rows into ``_BT`` tensors; ``attn_BT`` is 1 on real tokens."""
    T = max(len(r) for r in rows)
    B = len(rows)

    def pad(get, value=0.0, dtype=torch.float32):
        out = torch.full((B, T), value, dtype=dtype)
        for b, r in enumerate(rows):
            v = get(r)
            out[b, : len(v)] = torch.tensor(v, dtype=dtype)
        return out

    return {
        "ids_BT": pad(lambda r: r.input_ids, pad_id, torch.long),
        "attn_BT": pad(lambda r: [1] * len(r), 0, torch.long),
        "mask_BT": pad(lambda r: r.loss_mask),
        "adv_BT": pad(lambda r: r.advantage),
        "old_logp_BT": pad(lambda r: r.old_logprob),
        "clip_low_BT": pad(lambda r: r.clip_low),
        "clip_high_BT": pad(lambda r: r.clip_high),
        "offpolicy_BT": pad(lambda r: r.offpolicy),
        "detach_BT": pad(lambda r: r.detach),
    }
