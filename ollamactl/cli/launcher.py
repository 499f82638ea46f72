"""The console-script entry point: `pick` takes a Typer-free fast path, everything else the app.

`ollamactl pick ...` runs in shell loops, and Typer with pydantic costs ~150 ms a call; the fast
path keeps it near a bare interpreter. Help and shell completion always go to Typer.
"""

from __future__ import annotations

import os
import sys

_HELP = {"-h", "--help"}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["pick"] and not _HELP.intersection(args) and "_OLLAMACTL_COMPLETE" not in os.environ:
        from ollamactl.cli.pick_fast import main as pick

        sys.exit(pick(args[1:]))
    from typer.main import get_command

    from ollamactl.cli.app import app

    get_command(app).main(args=args, prog_name="ollamactl")
