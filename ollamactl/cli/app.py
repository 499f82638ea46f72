"""The Typer root: global options, the one exit path for every command, and the composed sub-apps.

Each command module under `ollamactl/cli/` owns a Typer sub-app; this module composes them
(imports run one way: app -> command modules -> core). Heavy modules (httpx, rich.live, asyncio)
are imported inside the commands that need them.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from ollamactl import __version__
from ollamactl.cli import (
    completion_cmd,
    embed_cmd,
    exec_cmd,
    exits,
    export_cmd,
    health_cmds,
    model_cmds,
    output,
    pick_cmd,
    registry_cmds,
    run_cmd,
    simulate_cmd,
)


class OllamactlGroup(TyperGroup):
    """Every command's outcome goes through `exits`: errors, Ctrl-C and broken pipes (in `invoke`),
    and usage errors too, as one `ollamactl: error:` line with exit 2 (in `main`)."""

    def invoke(self, ctx: Any) -> Any:
        outcome: list[Any] = []
        code = exits.guarded(lambda: outcome.append(super(OllamactlGroup, self).invoke(ctx)))
        if code:
            raise typer.Exit(code)
        return outcome[0] if outcome else None

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,  # type: ignore[override]
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        sys.exit(self._checked_main(args, prog_name, complete_var, **extra))

    def _checked_main(self, args: Any, prog_name: Any, complete_var: Any, **extra: Any) -> int:
        from typer.exceptions import Abort

        try:  # Typer >= 0.20 vendors Click
            from typer._click import exceptions as click
        except ImportError:  # pragma: no cover - older Typer on Click
            from click import exceptions as click  # type: ignore[no-redef]

        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.NoArgsIsHelpError as usage:
            usage.show()
            return usage.exit_code
        except click.UsageError as usage:
            where = usage.ctx.command_path if usage.ctx is not None else "ollamactl"
            output.error(f"{usage.format_message().rstrip('.')} (see `{where} --help`)")
            return usage.exit_code
        except click.ClickException as problem:
            output.error(problem.format_message())
            return problem.exit_code
        except Abort:  # end of input at a prompt
            output.error("the input ended before an answer was given")
            return 1
        return result if isinstance(result, int) else 0


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
for _module in (registry_cmds, health_cmds, pick_cmd, exec_cmd, model_cmds, run_cmd, embed_cmd, completion_cmd,
                export_cmd, simulate_cmd):
    app.add_typer(_module.app)
