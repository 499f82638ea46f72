"""`ollamactl exec`: run a command against one instance of the fleet, holding a lease on it.

The work is `Fleet.run_command`; this module parses. Options come before COMMAND (or before `--`),
everything after COMMAND is its own.
"""

from __future__ import annotations

import typer

from ollamactl import ExitCode
from ollamactl.cli.completers import complete_instance
from ollamactl.cli.context import fleet
from ollamactl.cli.help_style import setting_default
from ollamactl.cli.routing.pick_cmd import KEY, MODEL, STRATEGY, TYPE

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)

WAIT_HELP = (f"Seconds to wait for a free instance while all are at max_inflight {setting_default('wait')};"
             f" 0: exit {ExitCode.NO_INSTANCE} at once.")


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_command(
    command: list[str] = typer.Argument(..., metavar="COMMAND [ARGS]...",
                                        help="The command to run, with OLLAMA_HOST set to the chosen instance."),
    model: str | None = MODEL,
    request_type: str | None = TYPE,
    strategy: str | None = STRATEGY,
    key: str | None = KEY,
    strict: bool = typer.Option(False, "--strict", help=f"Exit {ExitCode.NO_INSTANCE} when no instance has the model."),
    refresh: bool = typer.Option(False, "--refresh", help="Probe the instances now instead of using the cache."),
    instance_ref: str | None = typer.Option(None, "--instance", metavar="ID_OR_NAME",
                                            help="Use this instance (no selection).", autocompletion=complete_instance),
    wait: float | None = typer.Option(None, "--wait", metavar="S", help=WAIT_HELP),
) -> None:
    """Run COMMAND against an instance, holding a lease on it while it runs; exit with its status.

    COMMAND gets OLLAMA_HOST, OLLAMACTL_INSTANCE and OLLAMACTL_URL, and OLLAMA_API_KEY set to the
    instance's key (an inherited one is removed when the instance has none); signals are passed to it.

    Its exit status is not held against the instance: it does not feed the circuit breaker.

    COMMAND never runs unleased: it dies with exec (Linux), and if the lease lapses (exec was
    stopped past it) and another caller has taken the slot, COMMAND is paused until one frees.

    Example: seq 100 | xargs -P 8 -I{} ollamactl exec -m llama3.2 -- sh -c 'curl -s "$OLLAMA_HOST/api/generate" ...'
    """
    status = fleet().run_command(command, model=model, type=request_type, instance=instance_ref, strategy=strategy,
                                 key=key, strict=strict, refresh=refresh, wait=wait)
    if status:
        raise typer.Exit(status)
