"""The error a user can fix: bad config, a missing or malformed file, a model that does not
load, a run directory in use. Its message is one line that names the file, line or field and
what to do; the command line prints it (``error: ...``) and exits with code 2, never with a
traceback. Anything else that escapes is a bug in tirl."""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors whose message is for the user (see the module docstring)."""
