"""Invariant 1: no tool (or prompt) token is ever trainable, whatever the trajectory looks like."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tirl.rollout.masks import SFT_ORIGINS, loss_mask
from tirl.train.rows import trajectory_row
from tirl.types import Origin, Segment, StopReason, Trajectory

segments = st.lists(st.tuples(st.sampled_from(list(Origin)), st.lists(st.integers(0, 100), min_size=1, max_size=5)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 100), min_size=1, max_size=5), segments, st.sampled_from(list(StopReason)), st.booleans(), st.booleans())
def test_no_tool_or_prompt_token_is_ever_trained(prompt, segs, stop, truncated, sft):
    tr = Trajectory("t", 0, prompt, [Segment(o, ids) for o, ids in segs], stop_reason=stop)
    mask = loss_mask(tr, mask_truncated=truncated, origins=SFT_ORIGINS if sft else frozenset({Origin.POLICY}))
    assert len(mask) == len(tr.token_ids)
    pos = len(prompt)
    assert not any(mask[:pos])
    for seg in tr.segments:
        if seg.origin in (Origin.TOOL, Origin.PROMPT) or (not sft and seg.origin is Origin.EXPERT):
            assert not any(mask[pos : pos + len(seg)])
        pos += len(seg)
    row = trajectory_row(tr, advantage=1.5, clip_low=0.2, clip_high=0.28)
    assert len(row.input_ids) == len(row.loss_mask) == len(row.advantage) == len(row.old_logprob) == len(row.offpolicy)
    assert all(a == 0.0 for a, m in zip(row.advantage, row.loss_mask) if m == 0)
