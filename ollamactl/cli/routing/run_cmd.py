"""`ollamactl run`'s Typer declaration: its options, help and completion. The body is
cli/routing/run_stream.py's `run` (cli/commands.py BODIES), which Typer calls through `forwarded`
and the launcher's fast route calls for ordinary command lines.
"""

from __future__ import annotations

import typer

from ollamactl import DEFAULT_TRIES, STRATEGIES, ExitCode
from ollamactl.cli.commands import forwarded
from ollamactl.cli.completers import choices, complete_instance, complete_model
from ollamactl.cli.help_style import setting_default
from ollamactl.cli.routing.exec_cmd import WAIT_HELP

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)


@app.command()
@forwarded("run")
def run(
    model: str = typer.Argument(..., help="Model name, e.g. llama3.2.", autocompletion=complete_model),
    prompt: list[str] | None = typer.Argument(None, help="Prompt words (joined by spaces); none or - reads stdin."),
    chat: bool = typer.Option(False, "--chat", help="Use /api/chat instead of /api/generate."),
    system: str | None = typer.Option(None, "--system", help="System prompt."),
    json_output: bool = typer.Option(False, "--json", help="Print the raw NDJSON objects, one per line."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Ask for one answer object (stream: false)."),
    fmt: str | None = typer.Option(None, "--format", help="json, or the path of a JSON-schema file.",
                                   autocompletion=choices(("json",))),
    option: list[str] | None = typer.Option(None, "--option", "-o", metavar="KEY=VALUE",
                                             help="Model option (repeatable), e.g. -o temperature=0.2."),
    keep_alive: str | None = typer.Option(None, "--keep-alive", metavar="DURATION",
                                          help="How long the model stays loaded: 10m, 3600, -1, 0."),
    think: bool | None = typer.Option(None, "--think/--no-think", help="Ask a thinking model to think (or not)."),
    instance_ref: str | None = typer.Option(None, "--instance", metavar="ID_OR_NAME",
                                            help="Use this instance (no selection, no failover).",
                                            autocompletion=complete_instance),
    strategy: str | None = typer.Option(None, "--strategy", "-s", autocompletion=choices(STRATEGIES),
                                        help=f"Selection strategy {setting_default('strategy')}."),
    key: str | None = typer.Option(None, "--key", help="Sticky: the same key gets the same instance."),
    tries: int = typer.Option(DEFAULT_TRIES, "--tries", help="Instances to try before giving up."),
    wait: float | None = typer.Option(None, "--wait", metavar="S", help=WAIT_HELP),
    strict: bool = typer.Option(False, "--strict",
                                help=f"Exit {ExitCode.NO_INSTANCE} rather than fall back to the default instance"
                                     " (OLLAMA_HOST)."),
    connect_timeout: float | None = typer.Option(None, "--connect-timeout", metavar="S",
                                                 help=f"Seconds to connect {setting_default('connect_timeout')}."),
    first_byte_timeout: float | None = typer.Option(None, "--first-byte-timeout", metavar="S",
                                                    help="Seconds until the first line"
                                                         f" {setting_default('first_byte_timeout')}."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="On stderr: instance, failovers, timings."),
) -> None:
    """Generate text with MODEL on the fleet, streamed to stdout as it arrives.

    Fails over to another instance only before any output (connect error, timeout, 5xx, busy,
    model missing); once text has been printed a failure ends the command (exit {ExitCode.FAILED}). When no
    healthy instance has MODEL, nothing is sent: exit {ExitCode.NO_INSTANCE}, naming each instance's models.

    Example: ollamactl run llama3.2 "Why is the sky blue?"
    """
