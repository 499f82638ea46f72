"""`ollamactl discover`: find the Ollama servers on the hosts and networks named, and register them."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from ollamactl import DEFAULT_PORT, DISCOVER_CONCURRENCY, DISCOVER_CONNECT_TIMEOUT, DISCOVER_TIMEOUT, ExitCode
from ollamactl.cli import output
from ollamactl.cli.context import fleet

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)

PROGRESS_EVERY_S = 0.1  # the progress line is redrawn at most this often


class Progress:
    """Addresses tried and servers found so far, on a terminal's stderr (nothing on a pipe)."""

    def __init__(self, found: list[Any]):
        self.found = found
        self.bar: Any = None
        self.drawn = 0.0

    def __call__(self, tried: int, total: int) -> None:
        now = time.monotonic()
        if tried < total and now - self.drawn < PROGRESS_EVERY_S:
            return
        self.drawn = now
        if self.bar is None:
            self.bar = output.ProgressBar(self.label(), total)
        self.bar.update(tried, self.label())

    def label(self) -> str:
        return f"scanning, {len(self.found)} found"

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command()
def discover(
    targets: list[str] | None = typer.Argument(
        None, metavar="[TARGET]...",
        help="Host, IP, HOST:PORT, URL or CIDR block such as 192.168.1.0/24 (default: localhost and"
             " OLLAMA_HOST's host; a network is scanned only when named)."),
    ports: list[int] | None = typer.Option(None, "--port", "-p", metavar="N",
                                           help="Port to try on every address; repeat for more"
                                                f" (default {DEFAULT_PORT})."),
    timeout: float = typer.Option(DISCOVER_TIMEOUT, "--timeout", metavar="S",
                                  help="Seconds a server that accepted a connection may take to answer."),
    connect_timeout: float = typer.Option(DISCOVER_CONNECT_TIMEOUT, "--connect-timeout", metavar="S",
                                          help="Seconds an address may take to accept a connection."),
    concurrency: int = typer.Option(DISCOVER_CONCURRENCY, "--concurrency", metavar="N",
                                    help="Addresses tried at once."),
    add: bool = typer.Option(False, "--add", help="Register every server found that is not registered yet."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Allow a scan of more than a /16 (65,536 addresses)."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON array of the servers found."),
) -> None:
    """Find the Ollama servers on the hosts and networks named; with --add, register the new ones.

    A server counts only when it answers /api/version and /api/tags as Ollama does. Exit {ExitCode.OK}
    when something was found, {ExitCode.NO_INSTANCE} when nothing was, {ExitCode.USAGE} for a bad target.

    Example: ollamactl discover 192.168.1.0/24 --port {DEFAULT_PORT} --port 11435 --add
    """
    current = fleet()
    found: list[Any] = []
    progress = Progress(found) if sys.stderr.isatty() else None
    interrupted = False
    try:
        current.discover(targets or (), ports=ports or (), timeout=timeout, connect_timeout=connect_timeout,
                         concurrency=concurrency, yes=yes, on_found=found.append, on_progress=progress)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if progress is not None:
            progress.stop()
    from ollamactl import url_order

    found.sort(key=url_order)
    fresh = [item for item in found if item.registered is None]
    ask = fresh and not add and not interrupted and not json_output and sys.stdin.isatty() and sys.stdout.isatty()
    if ask:  # the table first, then the question
        _show(found, {})
        add = typer.confirm(f"Register the {len(fresh)} new server(s)?", default=False, err=True)
    added = _register(current, found) if add else {}
    if not ask:
        _show(found, added, json_output)
    if interrupted:
        output.error(f"interrupted; the {len(found)} server(s) found so far are listed")
        raise typer.Exit(ExitCode.INTERRUPTED)
    if not found:
        output.say("no Ollama server answered (try other --port values, or a longer --timeout)")
        raise typer.Exit(ExitCode.NO_INSTANCE)
    output.say(f"found {len(found)} Ollama server(s), {len(fresh)} not registered before"
               + (f", {len(added)} registered now" if added else ""))


def _register(current: Any, found: list[Any]) -> dict[str, str]:
    """Register the new servers of `found`: {url: the new instance's id}."""
    added = {}
    for instance in current.add_found(found):
        added[instance.url] = instance.id
        output.say(f"registered {instance.url} as {instance.id} (name {instance.name!r})")
    return added


def _show(found: list[Any], added: dict[str, str], json_output: bool = False) -> None:
    if json_output:
        output.print_json([{**item.public(), "added": item.url in added,
                            "instance": item.registered or added.get(item.url)} for item in found])
        return
    if not found:
        return
    rows = [(item.url, item.version, len(item.models), "?" if item.loaded is None else ", ".join(item.loaded) or "-",
             item.registered or (f"added as {added[item.url]}" if item.url in added else "new"))
            for item in found]
    columns = ("URL", "VERSION", "MODELS", "LOADED", "REGISTERED")
    (output.table if sys.stdout.isatty() else output.plain_table)(columns, rows)
