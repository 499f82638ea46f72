"""Bodies of the registry's read-only commands, Typer-free so they start like a tool: `--version`,
`paths` and `list`. Stdlib only (rich only for a table on a terminal, through cli/output.py).

The launcher's fast route (cli/fast_route.py) calls them for ordinary command lines; their Typer
declarations (help, completion, docs, anything unusual on the line) call the same functions, so
both routes print the same thing.
"""

from __future__ import annotations

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


def list_instances(json_output: bool) -> None:
    """The registered instances as a table, or a JSON array (keys are never shown)."""
    from ollamactl import DEFAULT_URL
    from ollamactl.cli import output
    from ollamactl.cli.context import fleet

    current = fleet()
    instances = current.instances()
    if not instances:
        output.message(f"no instances registered; commands will use the default instance"
                       f" {current.default_instance.url} (from OLLAMA_HOST, else {DEFAULT_URL})."
                       " Add one with `ollamactl add URL`.")
    if json_output:
        output.print_json([i.public() for i in instances])
    else:
        output.instances(instances)
