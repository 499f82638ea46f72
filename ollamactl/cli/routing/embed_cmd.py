"""`ollamactl embed`'s Typer declaration: its options, help and completion. The body is
cli/routing/embed_batches.py's `embed` (cli/commands.py BODIES), which Typer calls through `forwarded`
and the launcher's fast route calls for ordinary command lines.
"""

from __future__ import annotations

import typer

from ollamactl import DEFAULT_BATCH_SIZE, DEFAULT_PER_INSTANCE, ExitCode
from ollamactl.cli.commands import forwarded
from ollamactl.cli.completers import complete_instance, complete_model
from ollamactl.cli.help_style import setting_default
from ollamactl.cli.routing.exec_cmd import WAIT_HELP

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)


@app.command()
@forwarded("embed")
def embed(
    model: str = typer.Argument(..., help="Embedding model, e.g. nomic-embed-text.", autocompletion=complete_model),
    texts: list[str] | None = typer.Argument(None, metavar="TEXT",
                                             help="Texts to embed; none: one per line from --file or stdin."),
    file: str | None = typer.Option(None, "--file", metavar="PATH|-", help="Read one text per line."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", help="Texts per request."),
    ndjson: bool = typer.Option(False, "--ndjson", help='One line {"index": i, "embedding": [...]} per text.'),
    allow_mixed: bool = typer.Option(False, "--allow-mixed",
                                     help="Use instances whose copies of the model differ (digests)."),
    instance_ref: str | None = typer.Option(None, "--instance", metavar="ID_OR_NAME",
                                            help="Use only this instance.", autocompletion=complete_instance),
    per_instance: int = typer.Option(DEFAULT_PER_INSTANCE, "--per-instance", help="Requests in flight per instance."),
    connect_timeout: float | None = typer.Option(None, "--connect-timeout", metavar="S",
                                                 help=f"Seconds to connect {setting_default('connect_timeout')}."),
    first_byte_timeout: float | None = typer.Option(None, "--first-byte-timeout", metavar="S",
                                                    help="Seconds for one batch's answer"
                                                         f" {setting_default('first_byte_timeout')}."),
    wait: float | None = typer.Option(None, "--wait", metavar="S", help=WAIT_HELP),
    strict: bool = typer.Option(False, "--strict",
                                help=f"Exit {ExitCode.NO_INSTANCE} rather than fall back to the default instance"
                                     " (OLLAMA_HOST)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="On stderr: instances, retries, timings."),
) -> None:
    """Embed texts with every eligible instance at once; vectors come out in input order.

    Example: ollamactl embed nomic-embed-text --file docs.txt --ndjson > vectors.ndjson
    """
