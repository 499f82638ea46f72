"""Commands answered without Typer, so they start like a tool: `--version` and `paths`. Stdlib only.

The launcher sends exactly `ollamactl --version` / `-V` and `ollamactl paths [--json]` here; the
Typer definitions (help, completion, docs, anything else on the line) call the same functions,
so both routes print the same thing.
"""

from __future__ import annotations

import sys

from ollamactl import __version__


def version_line() -> str:
    return f"ollamactl {__version__}"


def paths(json_output: bool) -> None:
    """Where the registry, its backup and the state live, as a two-column table or a JSON object."""
    from ollamactl.cli import output
    from ollamactl.cli.context import fleet

    current = fleet()
    where = current.locations
    locations = {
        "registry": str(where.registry),
        "registry_target": str(where.registry_target),
        "backup": str(where.backup),
        "state": str(where.state_file),
        "store": current.store.description,
    }
    if json_output:
        output.print_json(locations)
    else:
        output.plain_table(("WHAT", "PATH"), locations.items())


def main(args: list[str]) -> int | None:
    """The exit code when `args` is one of the commands answered here, else None (Typer's turn)."""
    if args in (["--version"], ["-V"]):
        sys.stdout.write(version_line() + "\n")
        return 0
    if args in (["paths"], ["paths", "--json"]):
        from ollamactl.cli import exits

        return exits.guarded(lambda: paths(json_output=len(args) == 2))
    return None
