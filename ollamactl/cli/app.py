"""The Typer root: global options, the one exit path for every command, and the composed sub-apps.

Each command module under `ollamactl/cli/` owns a Typer sub-app; this module composes them
(imports run one way: app -> command modules -> core). Commands load lazily: `COMMANDS`
(cli/commands.py) names each command's module, in the order of `--help`, and only the invoked
command's module is imported (`--help` and completion of command names load them all). Heavy modules (httpx,
rich.live, asyncio) are imported inside the commands that need them.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.completion import completion_init
from typer.core import TyperGroup

from ollamactl import UsageError
from ollamactl.cli import commands, exits, help_style, output


class OllamactlGroup(TyperGroup):
    """Every command's outcome goes through `exits`: errors, Ctrl-C and broken pipes (in `invoke`),
    and usage errors too, as one `ollamactl: error:` line with exit 2 (in `main`). Commands are
    loaded on demand from `commands.COMMANDS`."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(commands.COMMANDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = help_style.rendered(self.help)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        module = commands.COMMANDS.get(cmd_name)
        if module is None:
            return None
        return help_style.tidy(_module_commands(module).get(cmd_name))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and not args[0].startswith("-") and args[0] not in commands.COMMANDS:
            from ollamactl.cli.suggest import unknown_command

            raise unknown_command(args[0], commands.COMMANDS)
        name, command, rest = super().resolve_command(ctx, args)
        from ollamactl.cli import flags

        flags.running({p.name: [o for o in p.opts if o.startswith("-")] for p in getattr(command, "params", ())
                       if p.param_type_name == "option" and p.name})
        return name, command, rest

    def invoke(self, ctx: Any) -> Any:
        outcome: list[Any] = []

        def command() -> int | None:  # a body's int is its exit code (see commands.forwarded)
            outcome.append(super(OllamactlGroup, self).invoke(ctx))
            return outcome[0] if isinstance(outcome[0], int) else None

        code = exits.guarded(command)
        if code:
            raise typer.Exit(code)
        return outcome[0] if outcome else None

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,  # type: ignore[override]
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)

        def checked() -> int:  # help and --version print before any command: guarded like its output
            code = self._checked_main(args, prog_name, complete_var, **extra)
            sys.stdout.flush()
            return code

        sys.exit(exits.guarded(checked))

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
        except click.NoSuchOption as usage:
            from ollamactl.cli.suggest import unknown_option

            known = [] if usage.ctx is None else [option for param in usage.ctx.command.params
                                                  for option in (*param.opts, *param.secondary_opts)]
            output.error(unknown_option(usage.option_name, [*known, "--help", "-h"], _where(usage, args)).headline())
            return usage.exit_code
        except click.UsageError as usage:
            message = usage.format_message().rstrip(".")
            message = message[:1].lower() + message[1:]  # `error: missing argument`, as every other error reads
            output.error(UsageError(message, f"see `{_where(usage, args)} --help`").headline())
            return usage.exit_code
        except click.ClickException as problem:
            output.error(problem.format_message())
            return problem.exit_code
        except Abort:  # end of input at a prompt
            output.error("the input ended before an answer was given")
            return 1
        return result if isinstance(result, int) else 0


def _where(usage: Any, args: Any) -> str:
    """The command a usage error is about: its context's, or the command named on the line when
    Click reports it from the group's (an option's missing value, say)."""
    where = usage.ctx.command_path if usage.ctx is not None else "ollamactl"
    words = list(args) if args is not None else sys.argv[1:]
    if where == "ollamactl" and words and words[0] in commands.COMMANDS:
        return f"ollamactl {words[0]}"
    return where


app = typer.Typer(
    name="ollamactl",
    cls=OllamactlGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _module_commands(module: str) -> dict[str, Any]:
    """The Click commands a command module's Typer sub-app defines, by name (built once per module)."""
    import importlib

    from typer.main import get_command

    if module not in _LOADED:
        group = get_command(importlib.import_module(f"ollamactl.cli.{module}").app)
        _LOADED[module] = dict(getattr(group, "commands", None) or {group.name: group})
    return _LOADED[module]


_LOADED: dict[str, dict[str, Any]] = {}


completion_init()  # add_completion=False leaves the shells' completion classes unregistered (completion_cmd)


def _version(value: bool) -> None:
    if value:
        from ollamactl.cli.registry.quick import version_line

        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Manage a fleet of Ollama servers: registry, health, routing, and fleet-wide run/embed.

    Exit codes: {EXIT_CODES}.

    \b
    Examples:
      ollamactl add gpu1 --check          # register a server, probed first
      ollamactl pick -m llama3.2          # the URL for a llama3.2 request
      ollamactl run llama3.2 "Why is the sky blue?"
    """

