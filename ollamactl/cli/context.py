"""The fleet a command works on: the user's registry and state, with warnings on stderr."""

from __future__ import annotations

from ollamactl import Fleet
from ollamactl.cli import output


def fleet() -> Fleet:
    """A command's fleet: warnings on stderr; a background refresh it needs starts as it ends."""
    return Fleet(warn=output.warn, refresh_at_exit=True)
