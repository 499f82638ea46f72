"""Registry commands: add, list, update, enable, disable, remove, paths."""

from __future__ import annotations

import sys

import typer

from ollamactl import TYPES, ExitCode, Instance, UsageError
from ollamactl.cli import output
from ollamactl.cli.commands import forwarded
from ollamactl.cli.completers import choices, complete_instance, complete_priority
from ollamactl.cli.confirm import confirm
from ollamactl.cli.context import fleet

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from ollamactl import Fleet

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)

TYPE_HELP = "What the instance serves: chat, embedding or both."
PRIORITY_HELP = "Tier: lower is preferred; `backup` is used only when every other tier is out."
ADD_PROBE_S = 2.0  # add's probe of a new instance: a short deadline (a warning, not a verdict)
INFLIGHT_HELP = "Leases at once (exec, run, embed): the server's OLLAMA_NUM_PARALLEL x models; 0: unlimited."


def _inflight(value: int | None) -> int | None:
    """--max-inflight N as the registry keeps it: 0 is unlimited (None)."""
    if value is not None and value < 0:
        raise UsageError(f"--max-inflight {value} is negative", "give a whole number, 0 for unlimited")
    return value or None


def _say_respelled(url: str, stored: str) -> None:
    """Tell the user when the host they typed is kept under another spelling (a numeric IPv4 form)."""
    from ollamactl import respelled_host

    respelled = respelled_host(url)
    if respelled:
        output.say(f"{respelled[0]} is the address {respelled[1]}: stored as {stored}")


def read_api_key(label: str) -> str:
    """A key from stdin: a hidden prompt on a terminal, else the whole of stdin."""
    if sys.stdin.isatty():
        import getpass

        key = getpass.getpass(f"API key for {label}: ")
    else:
        key = sys.stdin.read()
    key = key.strip()
    if not key:
        raise UsageError("no API key on stdin",
                         "pipe the key in, e.g. `pass show gpu1 | ollamactl ... --api-key-stdin`")
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        raise UsageError("the API key on stdin contains spaces or control characters", "pass exactly one key")
    return key


@app.command()
def add(
    url: str = typer.Argument(..., metavar="URL", help="Host or URL, OLLAMA_HOST style: gpu1, gpu1:8080, https://host/prefix."),
    name: str | None = typer.Option(None, "--name", help="Display name (default: the id)."),
    instance_id: str | None = typer.Option(None, "--id", help="Id (default: derived from host and port)."),
    kind: str = typer.Option("both", "--type", "-t", help=TYPE_HELP, autocompletion=choices(TYPES)),
    weight: int = typer.Option(1, "--weight", "-w", help="Share for the weighted strategy (>= 1)."),
    priority: str = typer.Option("0", "--priority", "-p", metavar="N|backup", help=PRIORITY_HELP,
                                 autocompletion=complete_priority),
    max_inflight: int = typer.Option(0, "--max-inflight", metavar="N", help=INFLIGHT_HELP),
    disabled: bool = typer.Option(False, "--disabled", help="Register it but do not route to it."),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", metavar="VAR", help="Send the key held in this environment variable."
    ),
    api_key_stdin: bool = typer.Option(
        False, "--api-key-stdin", help="Read a key from stdin and store it in the (0600) registry."
    ),
    check: bool | None = typer.Option(
        None, "--check/--no-check", show_default=False,
        help=f"--check: probe it first, refuse (exit {ExitCode.FAILED}) unless it answers like Ollama."
             f" --no-check: no probe and no name lookup. Default: probe it once registered ({ADD_PROBE_S:g} s at"
             " most) and warn when it does not answer like Ollama."),
) -> None:
    """Register an instance and print its id.

    The same server under another spelling (localhost, 127.0.0.1, [::1], 127.1, [::ffff:127.0.0.1])
    is refused as a duplicate; numeric IPv4 spellings are stored as dotted quads.

    A pasted API path (/api, /api/generate, /v1) is dropped, with a warning: ollamactl adds it itself.

    Example: ollamactl add http://cpu1:{DEFAULT_PORT} --name "CPU box" --priority backup --max-inflight 2 --check
    """
    from ollamactl import check_key_source

    check_key_source(api_key_env, api_key_stdin)  # before a key is read
    key = read_api_key(name or url) if api_key_stdin else None
    current = fleet()
    instance = current.add(url, name=name, id=instance_id, type=kind, weight=weight, enabled=not disabled,
                           api_key_env=api_key_env, api_key=key, priority=priority,
                           max_inflight=_inflight(max_inflight), check=bool(check))
    _say_respelled(url, instance.url)
    if check is None:
        _probe_added(current, instance)
    typer.echo(instance.id)


def _probe_added(current: Fleet, instance: Instance) -> None:
    """Warn when the instance just registered does not answer like Ollama (a typo in the host or
    port, a server not started yet); the result is cached as any probe's."""
    from ollamactl import unresolvable_host

    later = f"registered anyway, see `ollamactl health {instance.id}` once it is up"
    host = unresolvable_host(instance.url)
    if host:
        output.warn(f"host {host!r} does not resolve (a typo?); {later}")
        return
    [result] = current.check(instance.id, timeout=ADD_PROBE_S)
    if not result.healthy:
        output.warn(f"{instance.url} does not answer like Ollama ({result.error}); {later}")


@app.command("list")
@forwarded("list")
def list_instances(json_output: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """Show the registered instances (keys are never shown).

    Example: ollamactl list --json | jq -r '.[].url'
    """


@app.command()
def update(
    ref: str = typer.Argument(..., metavar="ID_OR_NAME", autocompletion=complete_instance),
    url: str | None = typer.Option(None, "--url", help="New host or URL."),
    name: str | None = typer.Option(None, "--name", help="New display name."),
    kind: str | None = typer.Option(None, "--type", "-t", help=TYPE_HELP, autocompletion=choices(TYPES)),
    weight: int | None = typer.Option(None, "--weight", "-w", help="New weight (>= 1)."),
    priority: str | None = typer.Option(None, "--priority", "-p", metavar="N|backup", help=PRIORITY_HELP,
                                        autocompletion=complete_priority),
    max_inflight: int | None = typer.Option(None, "--max-inflight", metavar="N", help=INFLIGHT_HELP),
    enable: bool = typer.Option(False, "--enable", help="Route to it again."),
    disable: bool = typer.Option(False, "--disable", help="Stop routing to it."),
    api_key_env: str | None = typer.Option(None, "--api-key-env", metavar="VAR",
                                              help="Use the key held in this environment variable."),
    api_key_stdin: bool = typer.Option(False, "--api-key-stdin", help="Read a new key from stdin."),
    no_api_key: bool = typer.Option(False, "--no-api-key", help="Forget the key settings."),
) -> None:
    """Change an instance's settings; only the options given change.

    Example: ollamactl update gpu1-{DEFAULT_PORT} --weight 3 --api-key-env GPU1_KEY
    """
    if enable and disable:
        raise UsageError("--enable and --disable conflict", "give one of them")
    key_flags = [flag for flag, on in (("--api-key-env", api_key_env is not None),
                                       ("--api-key-stdin", api_key_stdin), ("--no-api-key", no_api_key)) if on]
    if len(key_flags) > 1:
        raise UsageError(f"{' and '.join(key_flags)} conflict", "give one of them")
    changes: dict[str, object] = {field: value for field, value in
                                  (("url", url), ("name", name), ("type", kind), ("weight", weight),
                                   ("priority", priority)) if value is not None}
    if max_inflight is not None:
        changes["max_inflight"] = _inflight(max_inflight)
    if enable or disable:
        changes["enabled"] = enable
    if api_key_env is not None:
        changes["api_key_env"] = api_key_env
    elif no_api_key:
        changes["api_key_env"] = None
    if not changes and not api_key_stdin:
        raise UsageError(f"nothing to change for {ref!r}", "give at least one option, see `ollamactl update --help`")
    current = fleet()
    if api_key_stdin:
        current.find(ref)  # fail on an unknown instance before asking for a key
        changes["api_key"] = read_api_key(ref)
    instance = current.update(ref, **changes)
    if url is not None:
        _say_respelled(url, instance.url)
    output.message(f"updated {instance.id}")


@app.command()
def enable(refs: list[str] = typer.Argument(..., metavar="ID_OR_NAME", autocompletion=complete_instance)) -> None:
    """Route to these instances again.

    Example: ollamactl enable gpu1-{DEFAULT_PORT} gpu2-{DEFAULT_PORT}
    """
    for instance in fleet().enable(*refs):
        output.message(f"enabled {instance.id}")


@app.command()
def disable(refs: list[str] = typer.Argument(..., metavar="ID_OR_NAME", autocompletion=complete_instance)) -> None:
    """Stop routing to these instances (they stay registered).

    Example: ollamactl disable gpu2-{DEFAULT_PORT}
    """
    for instance in fleet().disable(*refs):
        output.message(f"disabled {instance.id}")


@app.command()
def remove(
    refs: list[str] = typer.Argument(..., metavar="ID_OR_NAME", autocompletion=complete_instance),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Unregister instances (asks first on a terminal; needs --yes otherwise).

    Example: ollamactl remove gpu2-{DEFAULT_PORT} --yes
    """
    current = fleet()
    reg = current.registry()
    targets = [reg.find(ref) for ref in refs]
    confirm(f"Remove {', '.join(f'{i.id} ({i.url})' for i in targets)}?", yes, "remove")
    for instance in current.remove(*(i.id for i in targets)):
        output.message(f"removed {instance.id}")


@app.command("paths")
@forwarded("paths")
def show_paths(json_output: bool = typer.Option(False, "--json", help="Print a JSON object.")) -> None:
    """Show where the registry, its backup and the state file live.

    Example: ollamactl paths --json
    """
