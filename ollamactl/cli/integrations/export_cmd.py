"""`ollamactl export`: the fleet as a LiteLLM, nginx or HAProxy config, or as JSON (built by core.export)."""

from __future__ import annotations

import typer

from ollamactl import DEFAULT_LISTEN, REQUEST_TYPES
from ollamactl.cli import output
from ollamactl.cli.completers import complete_model
from ollamactl.cli.context import fleet

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)


def _complete_format(incomplete: str) -> list[str]:
    from ollamactl import FORMATS

    return [fmt for fmt in FORMATS if fmt.startswith(incomplete)]


def _complete_type(incomplete: str) -> list[str]:
    return [kind for kind in REQUEST_TYPES if kind.startswith(incomplete)]


@app.command()
def export(
    fmt: str = typer.Option(..., "--format", "-f", metavar="FORMAT", autocompletion=_complete_format,
                            show_default=False, help="litellm (config.yaml), nginx, haproxy or json."),
    model: str | None = typer.Option(None, "--model", "-m", autocompletion=complete_model,
                                     help="Only this model (LiteLLM), or only instances serving it."),
    request_type: str | None = typer.Option(None, "--type", "-t", autocompletion=_complete_type,
                                            help="Only chat or embedding instances (LiteLLM: entries)."),
    include_all: bool = typer.Option(False, "--all", "-a",
                                     help="Include disabled instances (nginx: down, HAProxy: disabled)."),
    listen: str | None = typer.Option(None, "--listen", "-l", metavar="ADDR:PORT", show_default=DEFAULT_LISTEN,
                                      help="Where the gateway listens."),
    output_path: str | None = typer.Option(None, "--output", "-o", metavar="PATH", show_default=False,
                                      help="Write the config to PATH (atomically, mode 0644) instead of stdout."),
    secrets_file: str | None = typer.Option(None, "--secrets-file", metavar="PATH", show_default=False,
                                            help="nginx: write keyed instances' keys to PATH (mode 0600),"
                                                 " which the config includes."),
) -> None:
    """Print (or write) the fleet as a LiteLLM, nginx or HAProxy config, or as JSON.

    Built from the registry and the health cache: run `ollamactl refresh` first for current model lists.

    nginx and HAProxy: one gateway on --listen; /api/embed, /api/embeddings and /v1/embeddings go to the
    embedding instances, every other path to the chat instances. Each file's header says how to use it.

    Keys never go to stdout or into the config: LiteLLM and HAProxy read them from the environment
    ($OLLAMA_KEY_<ID> for a stored key); nginx gets them only through --secrets-file.

    LiteLLM routing: least-busy -> least-busy; every other strategy -> simple-shuffle (LiteLLM's
    latency-based-routing sends nearly every call to a dead server, which fails fastest).

    JSON: {"schema": 1, "strategy": ..., "instances": [...]}, each instance with its last health check.

    Example: ollamactl export --format haproxy -o /etc/haproxy/ollama.cfg
    """
    from ollamactl import NothingToExport

    try:
        result = fleet().export(fmt, model=model, type=request_type, include_disabled=include_all, listen=listen,
                                output=output_path, secrets_file=secrets_file, write=True)
    except NothingToExport as nothing:
        for message in nothing.warnings:
            output.warn(message)
        raise
    for message in result.warnings:
        output.warn(message)
    if output_path is None:
        typer.echo(result.text, nl=False)
