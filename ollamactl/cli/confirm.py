"""Asking before a command deletes or downloads: a question on a terminal, `--yes` otherwise."""

from __future__ import annotations

import sys

from ollamactl import UsageError
from ollamactl.cli import output


def confirm(question: str, yes: bool, verb: str) -> None:
    """Go on if `yes`, else ask on a terminal (exit 1 on no); off a terminal refuse (exit 2)."""
    import typer

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to {verb} without confirmation: stdin is not a terminal", "pass --yes")
    if not typer.confirm(output.clean(question, None), default=False, err=True):
        output.message(f"nothing done (answered no to: {output.clean(question, None)})")
        raise typer.Exit(1)
