"""Health commands: health (and --watch), refresh, models."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from ollamactl.cli import output
from ollamactl.cli.completers import complete_instance
from ollamactl.cli.context import fleet
from ollamactl.core import settings
from ollamactl.core.errors import ExitCode
from ollamactl.core.fleet import Fleet
from ollamactl.core.registry import Instance
from ollamactl.core.selection import ejected_until
from ollamactl.core.timefmt import clock, iso_utc
from ollamactl.model_names import normalise_model

app = typer.Typer()  # this module's commands; cli.app composes them

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl.core.health import HealthResult

Row = tuple[Instance, "HealthResult | None"]
HEALTH_COLUMNS = ("INSTANCE", "URL", "TYPE", "STATUS", "LATENCY", "VERSION", "MODELS", "LOADED", "ERROR")


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _exit_code(results: Sequence[HealthResult]) -> int:
    healthy = sum(1 for r in results if r.healthy)
    if healthy == len(results):
        return ExitCode.OK
    return ExitCode.NO_INSTANCE if healthy == 0 else ExitCode.SOME_UNHEALTHY


def _ejections(current: Fleet, now: float) -> dict[str, float]:
    """Instance id -> epoch until which the circuit breaker keeps it out (only those in the future)."""
    ejected = ((i, ejected_until(entry, now)) for i, entry in current.store.read()["breaker"].items())
    return {instance_id: float(until) for instance_id, until in ejected if until is not None}


def _json_row(instance: Instance, result: HealthResult, ejected: dict[str, float]) -> dict[str, Any]:
    return {
        "id": instance.id,
        "name": instance.name,
        "url": instance.url,
        "type": instance.type,
        "enabled": instance.enabled,
        "healthy": result.healthy,
        "error": result.error,
        "latency_ms": result.latency_ms,
        "version": result.version,
        "models": [normalise_model(m["name"]) for m in result.models],
        "loaded": None if result.loaded is None else [normalise_model(n) for n in result.loaded],
        "checked_at": iso_utc(result.checked_at),
        "ejected_until": iso_utc(ejected.get(instance.id)),
    }


def _cells(instance: Instance, result: HealthResult | None, ejected: dict[str, float]) -> list[Any]:
    Text = output.text  # noqa: N806 - a styled cell, as rich spells it
    until = ejected.get(instance.id)
    label = instance.id if instance.name == instance.id else f"{instance.id} ({instance.name})"
    head = [label, instance.url, instance.type]
    if result is None:
        return head + [Text("checking…", style="dim"), "", "", "", "", ""]
    if until is not None:
        status = Text("ejected until " + clock(until), style="yellow")
    elif result.healthy:
        status = Text("healthy", style="green")
    else:
        status = Text("unhealthy", style="red")
    if result.loaded is None:
        loaded = "?" if result.healthy else ""
    else:
        loaded = ", ".join(normalise_model(n) for n in result.loaded) or "-"
    latency = "" if result.latency_ms is None else f"{result.latency_ms:.0f} ms"
    models = str(len(result.models)) if result.healthy else ""
    return head + [status, latency, result.version or "", models, loaded, result.error or ""]


def health_table(rows: Sequence[Row], ejected: dict[str, float], title: str | None = None) -> Any:
    """The health rows as a table (every cell cleaned: server-sent words are never read as markup)."""
    return output.grid(HEALTH_COLUMNS, (_cells(instance, result, ejected) for instance, result in rows), title)


# ---------------------------------------------------------------------------------------------
# health / --watch


def watch_loop(
    current: Fleet,
    instances: Sequence[Instance],
    *,
    timeout: float | None,
    interval: float,
    show: Callable[[list[Row], bool], None],
    rounds: int | None = None,
    sleep: Callable[[float], None] | None = None,
) -> list[HealthResult]:
    """Check `instances` every `interval` s (start to start) for `rounds` rounds (None: for ever).

    `show(rows, round_done)` is called after each answer (round_done False) and once at the end
    of every round (True). A row keeps its previous answer until the new one arrives. Each round
    is saved to the cache. Returns the last round's results.
    """
    latest: dict[str, HealthResult | None] = {i.id: None for i in instances}

    def rows() -> list[Row]:
        return [(i, latest[i.id]) for i in instances]

    def on_result(result: HealthResult) -> None:
        latest[result.id] = result
        show(rows(), False)

    results: list[HealthResult] = []
    done = 0
    while rounds is None or done < rounds:
        started = time.monotonic()
        results = current.probe(instances, timeout=timeout, on_result=on_result)
        show(rows(), True)
        done += 1
        if rounds is not None and done >= rounds:
            break
        (sleep or _sleep)(max(0.0, interval - (time.monotonic() - started)))
    return results


def _sleep(seconds: float) -> None:
    """The pause between watch rounds (a seam for tests)."""
    time.sleep(seconds)


def _watch(current: Fleet, instances: list[Instance], timeout: float | None, interval: float,
           json_output: bool) -> None:
    import json

    ejected: dict[str, float] = {}

    def refresh_ejections() -> None:
        ejected.clear()
        ejected.update(_ejections(current, time.time()))

    refresh_ejections()
    if json_output:  # one JSON array per round, one line each (JSON Lines)
        def show_json(rows: list[Row], round_done: bool) -> None:
            if round_done:
                refresh_ejections()
                line = [_json_row(i, r, ejected) for i, r in rows if r is not None]
                sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
                sys.stdout.flush()

        watch_loop(current, instances, timeout=timeout, interval=interval, show=show_json)
        return
    if not sys.stdout.isatty():  # plain text: one table per round, no cursor tricks
        def show_plain(rows: list[Row], round_done: bool) -> None:
            if round_done:
                refresh_ejections()
                output.show(health_table(rows, ejected, title=f"health at {time.strftime('%H:%M:%S')}"))
                sys.stdout.write("\n")
                sys.stdout.flush()

        watch_loop(current, instances, timeout=timeout, interval=interval, show=show_plain)
        return
    def title() -> str:
        return f"health every {interval:g} s, {time.strftime('%H:%M:%S')} (Ctrl-C to stop)"

    with output.live(health_table([(i, None) for i in instances], ejected, title())) as live:
        def show_live(rows: list[Row], round_done: bool) -> None:
            if round_done:
                refresh_ejections()
            live.update(health_table(rows, ejected, title()), refresh=True)

        watch_loop(current, instances, timeout=timeout, interval=interval, show=show_live)


@app.command()
def health(
    refs: list[str] | None = typer.Argument(None, metavar="ID_OR_NAME", autocompletion=complete_instance,
                                            show_default=False),
    watch: bool = typer.Option(False, "--watch", help="Keep checking and update the table (Ctrl-C to stop)."),
    interval: float = typer.Option(2.0, "--interval", metavar="S", help="Seconds between checks with --watch."),
    timeout: float | None = typer.Option(None, "--timeout", metavar="S",
                                         help="Deadline per instance, seconds (default: settings.timeout, 5)."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON array (JSON Lines with --watch)."),
    include_all: bool = typer.Option(False, "--all", "-a", help="Check disabled instances too."),
) -> None:
    """Check instances now (all enabled ones, or those named) and show the results.

    Exit 0 when all are healthy, 4 when some are not, 3 when none is.

    Example: ollamactl health --timeout 2 --json | jq -r '.[] | select(.healthy | not) | .id'
    """
    if timeout is not None:
        settings.checked("timeout", timeout, "--timeout")
    settings.checked("interval", interval, "--interval")
    current = fleet()
    instances = current.targets(refs or (), include_all)
    if watch:
        _watch(current, instances, timeout, interval, json_output)
        return
    results = current.probe(instances, timeout=timeout)
    ejected = _ejections(current, time.time())
    if json_output:
        output.print_json([_json_row(i, r, ejected) for i, r in zip(instances, results, strict=True)])
    else:
        output.show(health_table(list(zip(instances, results, strict=True)), ejected,
                                 title=f"state store: {current.store.description}"))
    code = _exit_code(results)
    if code:
        raise typer.Exit(code)


# ---------------------------------------------------------------------------------------------
# refresh


@app.command()
def refresh(json_output: bool = typer.Option(False, "--json", help="Print a JSON object.")) -> None:
    """Check every enabled instance now and update the health cache.

    Exit 0 when all are healthy, 4 when some are not, 3 when none is.

    Example: ollamactl refresh && ollamactl pick llama3.2
    """
    results = fleet().refresh()
    healthy = sum(1 for r in results if r.healthy)
    if json_output:
        output.print_json({"total": len(results), "healthy": healthy, "unhealthy": len(results) - healthy})
    else:
        noun = "instance" if len(results) == 1 else "instances"
        typer.echo(f"{len(results)} {noun}: {healthy} healthy, {len(results) - healthy} unhealthy")
    code = _exit_code(results)
    if code:
        raise typer.Exit(code)


# ---------------------------------------------------------------------------------------------
# models


@app.command()
def models(
    json_output: bool = typer.Option(False, "--json", help="Print a JSON array."),
    diff: bool = typer.Option(False, "--diff", help="Only the models missing somewhere or at several digests."),
) -> None:
    """Show which model is on which instance (from the health cache; stale entries are re-checked).

    A `differs` mark means that instance's copy of the tag is another build (digest) than the rest.
    With --diff: only the models absent from some instance of a fitting type, or held at more
    than one digest, as `sync` would plan them (then `ollamactl sync` aligns them).

    Example: ollamactl models --json | jq -r '.[] | select(any(.instances[]; .digest_differs)) | .model'
    """
    current = fleet()
    results = current.health()
    for instance_id, result in results.items():
        if not result.healthy:
            output.message(f"{instance_id}: unhealthy ({result.error}); its models are not listed")
    if diff:
        from ollamactl.cli.model_cmds import show_diff

        show_diff(current, results, json_output)
        return
    listing = current.models(results)
    if json_output:
        output.print_json(listing)
        return
    if not listing:
        output.message("no models found on any healthy instance")
        return

    def rows():  # type: ignore[no-untyped-def]
        for item in listing:
            first = True
            for entry in item["instances"]:
                loaded = {None: "?", True: "yes", False: "no"}[entry["loaded"]]
                digest = (entry["digest"] or "")[:12]
                yield (item["model"] if first else "", entry["id"], loaded, digest,
                       "differs" if entry["digest_differs"] else "")
                first = False

    output.table(("MODEL", "INSTANCE", "LOADED", "DIGEST", "MISMATCH"), rows())
