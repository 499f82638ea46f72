"""The Typer-free route: `--version`, and ordinary command lines of the commands in `BODIES`.

Typer and the command tree cost several times a bare interpreter's start-up, so the launcher
first tries this route: the command line is parsed against the command's generated spec
(cli/command_specs.py, written from the Typer app by scripts/gen_completions.py) and the body is
called with what Typer would pass it. Whatever the spec parser does not answer (help, completion,
an unusual or wrong command line) returns None here and goes to Typer, so help and usage errors
have one author. The body's outcome goes through `cli.exits`, as under Typer.
"""

from __future__ import annotations

import os
import sys

from ollamactl.cli.commands import BODIES, body


def main(args: list[str]) -> int | None:
    """The exit code when this route answered `args`, else None (Typer's turn)."""
    if "_OLLAMACTL_COMPLETE" in os.environ or not args:
        return None
    if args in (["--version"], ["-V"]):
        from ollamactl.cli.registry.quick import version_line

        sys.stdout.write(version_line() + "\n")
        return 0
    if args[0] not in BODIES:
        return None
    from ollamactl.cli.command_specs import SPECS
    from ollamactl.cli.spec_parser import parse

    values = parse(SPECS[args[0]], args[1:])  # type: ignore[arg-type]  # generated: each spec is a dict
    if values is None:
        return None
    from ollamactl.cli import exits

    run = body(args[0])
    return exits.guarded(lambda: run(**values))

