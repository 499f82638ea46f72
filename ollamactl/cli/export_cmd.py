"""`ollamactl export`: the fleet as a LiteLLM, nginx or HAProxy config, or as JSON (built by core.export)."""

from __future__ import annotations

import typer

from ollamactl.cli import output
from ollamactl.cli.completers import complete_model
from ollamactl.cli.context import fleet
from ollamactl.core.selection import REQUEST_TYPES

app = typer.Typer()  # this module's commands; cli.app composes them




def _complete_format(incomplete: str) -> list[str]:
    from ollamactl.core.export import FORMATS

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
) -> None:
    """Print the fleet as a LiteLLM, nginx or HAProxy config, or as JSON.

    Built from the registry and the health cache: run `ollamactl refresh` first for current model lists.

    Keys stored in the registry are never written out; LiteLLM reads them from $OLLAMA_KEY_<ID>.

    LiteLLM routing: round-robin, weighted, random -> simple-shuffle; least-latency, warm -> latency-based-routing.

    JSON: {"schema": 1, "strategy": ..., "instances": [...]}, each instance with its last health check.

    Example: ollamactl export --format litellm > litellm.yaml && litellm --config litellm.yaml
    """
    from ollamactl.core.export import NothingToExport

    try:
        result = fleet().export(fmt, model=model, type=request_type, include_disabled=include_all)
    except NothingToExport as nothing:
        for message in nothing.warnings:
            output.warn(message)
        raise
    for message in result.warnings:
        output.warn(message)
    typer.echo(result.text, nl=False)
