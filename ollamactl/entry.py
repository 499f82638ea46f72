"""The console-script entry point: dispatches to the Typer app and maps errors to exit codes."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    from typer.main import get_command

    from ollamactl.cli import app

    get_command(app).main(args=args, prog_name="ollamactl")
