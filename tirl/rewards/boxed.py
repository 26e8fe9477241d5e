"""Kept for older imports: answer extraction moved to ``tirl.protocol.answer`` (the protocols
use it too, and protocol/ must not import rewards/)."""

from tirl.protocol.answer import last_boxed

__all__ = ["last_boxed"]
