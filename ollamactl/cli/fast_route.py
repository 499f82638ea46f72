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

from ollamactl.cli.commands import BODIES, body


def main(args: list[str]) -> int | None:
    """The exit code when this route answered `args`, else None (Typer's turn)."""
    if "_OLLAMACTL_COMPLETE" in os.environ or not args:
        return None
    if args in (["--version"], ["-V"]):
        from ollamactl.cli import exits
        from ollamactl.cli.registry.quick import version_line

        return exits.guarded(lambda: print(version_line()))
    if args[0] not in BODIES:
        return None
    from ollamactl.cli.command_specs import SPECS
    from ollamactl.cli.spec_parser import parse

    spec: dict = SPECS[args[0]]  # type: ignore[assignment]  # generated: each spec is a dict
    values = parse(spec, args[1:])
    if values is None:
        return None
    from ollamactl.cli import exits, flags

    own: dict[str, list[str]] = {}
    for spelling, (param, kind, _) in spec["options"].items():
        if kind is not False:  # `--no-think` sets think too, but is not its name
            own.setdefault(param, []).append(spelling)
    flags.running(own)
    run = body(args[0])
    return exits.guarded(lambda: run(**values))

