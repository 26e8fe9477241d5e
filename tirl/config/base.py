"""What every config section shares: the pydantic base class and the one-line config error.

Section modules import only this, pydantic and the standard library, so ``import tirl.config``
stays cheap (no torch, no engine, no sandbox; docs/DESIGN.md, "Configuration and CLI").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tirl.errors import UserError


class Section(BaseModel):
    """Base of every config section: unknown fields are errors (a typo never silently falls
    back to a default), assignments are validated like loaded values, and inf/nan are refused
    (``optim.lr=inf`` is a typo, not a setting)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ConfigError(UserError, ValueError):
    """A config problem, in one line that names the field."""
