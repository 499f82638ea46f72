"""`ollamactl pick` as a Typer command: help, completion, usage errors and docs; the work is
pick_exec.pick, which ordinary command lines reach without Typer (cli/fast_route.py, through the
option spec generated from this declaration).
"""

from __future__ import annotations

import typer

from ollamactl import REQUEST_TYPES, STRATEGIES, ExitCode
from ollamactl.cli.commands import forwarded
from ollamactl.cli.completers import choices, complete_model
from ollamactl.cli.help_style import setting_default
from ollamactl.cli.routing.pick_exec import FORMATS

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)

# The selection options `pick` shares with `exec`.
MODEL = typer.Option(None, "--model", "-m", help="Only instances serving this model.", autocompletion=complete_model)
TYPE = typer.Option(None, "--type", "-t", help="chat or embedding.", autocompletion=choices(REQUEST_TYPES))
STRATEGY = typer.Option(None, "--strategy", "-s", autocompletion=choices(STRATEGIES),
                        help=f"{' | '.join(STRATEGIES)} {setting_default('strategy')}.")
KEY = typer.Option(None, "--key", help="Sticky: the same key gets the same instance.")


@app.command()
@forwarded("pick")
def pick(
    model: str | None = MODEL,
    request_type: str | None = TYPE,
    strategy: str | None = STRATEGY,
    key: str | None = KEY,
    count: int = typer.Option(1, "--count", "-n", help="Print COUNT successive picks, one per line."),
    fmt: str = typer.Option("url", "--format", "-f", help=f"{' | '.join(FORMATS)}. env: OLLAMA_HOST=..., then"
                            " OLLAMA_API_KEY=... for a keyed instance, shell-quoted for eval.",
                            autocompletion=choices(FORMATS)),
    strict: bool = typer.Option(False, "--strict", help=f"Exit {ExitCode.NO_INSTANCE} rather than fall back: when no"
                                                        " healthy instance has the model, or to the default instance."),
    explain: bool = typer.Option(False, "--explain", help="On stderr: why each instance was kept or dropped."),
    refresh: bool = typer.Option(False, "--refresh", help="Probe the instances now instead of using the cache."),
) -> None:
    """Print the base URL of the next instance to use ({DEFAULTS[strategy]} by default).

    Example: curl "$(ollamactl pick -m llama3.2)/api/generate" -d '{"model":"llama3.2","prompt":"hi"}'
    """
