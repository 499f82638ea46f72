"""The console-script entry point: `pick` takes a Typer-free fast path, everything else the app.

`ollamactl pick ...` runs in shell loops, and Typer costs far more than the pick itself; the fast
path keeps it near a bare interpreter. Help and shell completion always go to Typer. Both paths
end in `cli.exits`, so errors, Ctrl-C and broken pipes give the same codes and words; a Ctrl-C
during start-up itself (the imports) is caught here.
"""

from __future__ import annotations

import os
import sys

_HELP = {"-h", "--help"}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        if args[:1] == ["pick"] and not _HELP.intersection(args) and "_OLLAMACTL_COMPLETE" not in os.environ:
            from ollamactl.cli.pick_fast import main as pick

            code = pick(args[1:])
        else:
            from typer.main import get_command

            from ollamactl.cli.app import app

            get_command(app).main(args=args, prog_name="ollamactl")  # exits through cli.exits
            code = 0
    except KeyboardInterrupt:  # before the exit path was imported
        sys.stderr.write("ollamactl: error: interrupted\n")
        code = 130
    sys.exit(code)
