"""Health commands' Typer declarations: health (and --watch), refresh, models. Their bodies are in
cli/health/health_show.py, which the launcher's fast route also calls for ordinary command lines."""

from __future__ import annotations

import typer

from ollamactl import NUMBER_RULES
from ollamactl.cli.commands import forwarded
from ollamactl.cli.completers import complete_instance
from ollamactl.cli.help_style import setting_default

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)


@app.command()
@forwarded("health")
def health(
    refs: list[str] | None = typer.Argument(None, metavar="ID_OR_NAME", autocompletion=complete_instance,
                                            show_default=False),
    watch: bool = typer.Option(False, "--watch", help="Keep checking and update the table (Ctrl-C to stop)."),
    interval: float = typer.Option(2.0, "--interval", metavar="S",
                                   help="Seconds between checks with --watch"
                                        f" (at least {NUMBER_RULES['interval'].low:g})."),
    timeout: float | None = typer.Option(None, "--timeout", metavar="S",
                                         help=f"Deadline per instance, seconds {setting_default('timeout')}."),
    json_output: bool = typer.Option(False, "--json",
                                     help="Print a JSON array (with --watch: a JSON object per check, one a line)."),
    include_all: bool = typer.Option(False, "--all", "-a", help="Check disabled instances too."),
) -> None:
    """Check instances now (all enabled ones, or those named) and show the results.

    Exit {ExitCode.OK} when all are healthy, {ExitCode.SOME_UNHEALTHY} when some are not,
    {ExitCode.NO_INSTANCE} when none is.

    Example: ollamactl health --timeout 2 --json | jq -r '.[] | select(.healthy | not) | .id'
    """


@app.command()
@forwarded("refresh")
def refresh(json_output: bool = typer.Option(False, "--json", help="Print a JSON object.")) -> None:
    """Check every enabled instance now and update the health cache.

    Exit {ExitCode.OK} when all are healthy, {ExitCode.SOME_UNHEALTHY} when some are not,
    {ExitCode.NO_INSTANCE} when none is.

    Example: ollamactl refresh; ollamactl pick -m llama3.2
    """


@app.command()
@forwarded("models")
def models(
    json_output: bool = typer.Option(False, "--json", help="Print a JSON array."),
    diff: bool = typer.Option(False, "--diff", help="Only the models missing somewhere or at several digests."),
) -> None:
    """Show which model is on which instance (from the health cache; stale entries are re-checked).

    A `differs` mark means that instance's copy of the tag is another build (digest) than the rest.
    With --diff: only the models absent from some instance of a fitting type, or held at more
    than one digest, as `sync` would plan them (then `ollamactl sync` aligns them).

    Example: ollamactl models --json | jq -r '.[] | select(any(.instances[]; .digest_differs)) | .model'
    """
