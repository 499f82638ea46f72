"""The Typer application: global options, error-to-exit-code mapping, and the command modules.

Commands live in `ollamactl/commands/`, one module per area; each only parses, calls the core
and renders. Heavy modules (httpx, rich.live, asyncio) are imported inside the commands.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from ollamactl import __version__
from ollamactl.cli import export_cmd, health_cmds, pick_cmd, registry_cmds, run_embed_cmds
from ollamactl.core.errors import OllamactlError, report


class OllamactlGroup(TyperGroup):
    """Turns an OllamactlError from any command into one stderr line and its exit code."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except OllamactlError as error:
            raise typer.Exit(report(error)) from None


app = typer.Typer(
    name="ollamactl",
    cls=OllamactlGroup,
    help="Manage a fleet of Ollama servers: registry, health, routing, and fleet-wide run/embed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ollamactl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Manage a fleet of Ollama servers: registry, health, routing, and fleet-wide run/embed.

    Exit codes: 0 ok, 1 operation failed, 2 bad usage or input, 3 no eligible instance,
    4 some instances unhealthy (health), 130 interrupted.
    """


# Each command module owns its sub-app; the root composes them. The order here is the order of `--help`.
for _module in (registry_cmds, health_cmds, pick_cmd, run_embed_cmds, export_cmd):
    app.add_typer(_module.app)
