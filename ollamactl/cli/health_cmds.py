"""Health commands: health (and --watch), refresh, models, simulate."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from ollamactl.cli import output
from ollamactl.cli.completers import complete_instance
from ollamactl.core import registry
from ollamactl.core.errors import ExitCode, NoInstanceError, OllamactlError, UsageError
from ollamactl.core.registry import Instance, Registry
from ollamactl.core.selection import ejected_until, format_clock

app = typer.Typer()  # this module's commands; cli.app composes them

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl.core.health import HealthResult

Row = tuple[Instance, "HealthResult | None"]
HEALTH_COLUMNS = ("INSTANCE", "URL", "TYPE", "STATUS", "LATENCY", "VERSION", "MODELS", "LOADED", "ERROR")


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _targets(reg: Registry, refs: Sequence[str] | None, include_all: bool) -> list[Instance]:
    """The instances to check: the named ones (even disabled), else the enabled (or --all) ones,
    else, with nothing registered, the default instance (with a note)."""
    if refs:
        if not reg.instances and all(ref == "default" for ref in refs):
            return [registry.default_instance()]
        from ollamactl.core.registry_ops import resolve_all

        return resolve_all(reg, refs)
    if not reg.instances:
        default = registry.default_instance()
        output.message(f"no instances registered; checking the default instance {default.url}"
                       " (from OLLAMA_HOST, else 127.0.0.1:11434). Add one with `ollamactl add URL`.")
        return [default]
    chosen = [i for i in reg.instances if include_all or i.enabled]
    if not chosen:
        raise NoInstanceError(f"all {len(reg.instances)} registered instances are disabled",
                              "pass --all to check them anyway, or `ollamactl enable ID_OR_NAME`")
    return chosen


def _positive(value: float | None, option: str) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{option} must be a positive number of seconds, got {value:g}")


def _exit_code(results: Sequence[HealthResult]) -> int:
    healthy = sum(1 for r in results if r.healthy)
    if healthy == len(results):
        return ExitCode.OK
    return ExitCode.NO_INSTANCE if healthy == 0 else ExitCode.SOME_UNHEALTHY


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    stamp = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tagged(name: str) -> str:
    """A model name as `/api/tags` spells it: with a tag (`llama3.2` -> `llama3.2:latest`)."""
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _ejections(now: float) -> dict[str, float]:
    """Instance id -> epoch until which the circuit breaker keeps it out (only those in the future)."""
    from ollamactl.core import state

    ejected = ((i, ejected_until(entry, now)) for i, entry in state.read()["breaker"].items())
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
        "models": [tagged(m["name"]) for m in result.models],
        "loaded": None if result.loaded is None else [tagged(n) for n in result.loaded],
        "checked_at": _iso(result.checked_at),
        "ejected_until": _iso(ejected.get(instance.id)),
    }


def _cells(instance: Instance, result: HealthResult | None, ejected: dict[str, float]) -> list[Any]:
    from rich.text import Text

    until = ejected.get(instance.id)
    label = instance.id if instance.name == instance.id else f"{instance.id} ({instance.name})"
    head = [label, instance.url, instance.type]
    if result is None:
        return head + [Text("checking…", style="dim"), "", "", "", "", ""]
    if until is not None:
        status = Text("ejected until " + format_clock(until), style="yellow")
    elif result.healthy:
        status = Text("healthy", style="green")
    else:
        status = Text("unhealthy", style="red")
    if result.loaded is None:
        loaded = "?" if result.healthy else ""
    else:
        loaded = ", ".join(tagged(n) for n in result.loaded) or "-"
    latency = "" if result.latency_ms is None else f"{result.latency_ms:.0f} ms"
    models = str(len(result.models)) if result.healthy else ""
    return head + [status, latency, result.version or "", models, loaded, result.error or ""]


def health_table(rows: Sequence[Row], ejected: dict[str, float], title: str | None = None) -> Any:
    """A rich Table of health rows (Text cells: server-sent words are never read as markup)."""
    from rich.table import Table
    from rich.text import Text

    grid = Table(*HEALTH_COLUMNS, title=title, box=None, header_style="bold", pad_edge=False)
    for instance, result in rows:
        grid.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in
                       _cells(instance, result, ejected)))
    return grid


def _print(renderable: Any) -> None:
    output.console().print(renderable)
    sys.stdout.flush()


def _settings(reg: Registry, timeout: float | None) -> tuple[float, int]:
    return (timeout if timeout is not None else float(reg.setting("timeout")), int(reg.setting("concurrency")))


# ---------------------------------------------------------------------------------------------
# health / --watch


def watch_loop(
    instances: Sequence[Instance],
    *,
    timeout: float,
    concurrency: int,
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
    from ollamactl.core import health

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
        results = health.check(instances, timeout, concurrency, on_result=on_result)
        health.save(results)
        show(rows(), True)
        done += 1
        if rounds is not None and done >= rounds:
            break
        (sleep or _sleep)(max(0.0, interval - (time.monotonic() - started)))
    return results


def _sleep(seconds: float) -> None:
    """The pause between watch rounds (a seam for tests)."""
    time.sleep(seconds)


def _watch(instances: list[Instance], timeout: float, concurrency: int, interval: float, json_output: bool) -> None:
    import json

    ejected: dict[str, float] = {}

    def refresh_ejections() -> None:
        ejected.clear()
        ejected.update(_ejections(time.time()))

    refresh_ejections()
    if json_output:  # one JSON array per round, one line each (JSON Lines)
        def show_json(rows: list[Row], round_done: bool) -> None:
            if round_done:
                refresh_ejections()
                line = [_json_row(i, r, ejected) for i, r in rows if r is not None]
                sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
                sys.stdout.flush()

        watch_loop(instances, timeout=timeout, concurrency=concurrency, interval=interval, show=show_json)
        return
    if not sys.stdout.isatty():  # plain text: one table per round, no cursor tricks
        def show_plain(rows: list[Row], round_done: bool) -> None:
            if round_done:
                refresh_ejections()
                _print(health_table(rows, ejected, title=f"health at {time.strftime('%H:%M:%S')}"))
                sys.stdout.write("\n")
                sys.stdout.flush()

        watch_loop(instances, timeout=timeout, concurrency=concurrency, interval=interval, show=show_plain)
        return
    from rich.live import Live

    def title() -> str:
        return f"health every {interval:g} s, {time.strftime('%H:%M:%S')} (Ctrl-C to stop)"

    with Live(health_table([(i, None) for i in instances], ejected, title()), console=output.console(),
              auto_refresh=False, redirect_stdout=False, redirect_stderr=False) as live:
        def show_live(rows: list[Row], round_done: bool) -> None:
            if round_done:
                refresh_ejections()
            live.update(health_table(rows, ejected, title()), refresh=True)

        watch_loop(instances, timeout=timeout, concurrency=concurrency, interval=interval, show=show_live)


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
    _positive(timeout, "--timeout")
    _positive(interval, "--interval")
    reg = registry.load()
    instances = _targets(reg, refs, include_all)
    timeout, concurrency = _settings(reg, timeout)
    if watch:
        try:
            _watch(instances, timeout, concurrency, interval, json_output)
        except KeyboardInterrupt:
            raise typer.Exit(0) from None
        return
    from ollamactl.core import health as core

    try:
        results = core.check(instances, timeout, concurrency)
    except KeyboardInterrupt:
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    core.save(results)
    ejected = _ejections(time.time())
    if json_output:
        output.print_json([_json_row(i, r, ejected) for i, r in zip(instances, results, strict=True)])
    else:
        _print(health_table(list(zip(instances, results, strict=True)), ejected))
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
    from ollamactl.core import health as core

    reg = registry.load()
    instances = _targets(reg, None, False)
    timeout, concurrency = _settings(reg, None)
    try:
        results = core.check(instances, timeout, concurrency)
    except KeyboardInterrupt:
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    core.save(results)
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


def model_map(instances: Sequence[Instance], results: dict[str, HealthResult]) -> list[dict[str, Any]]:
    """Per model tag: the instances holding it, whether loaded there, and digest mismatches.

    An instance's digest "differs" when the tag has more than one digest across instances and
    that instance's digest is not the majority one (with no clear majority, every one differs).
    """
    holders: dict[str, list[dict[str, Any]]] = {}
    for instance in instances:
        result = results.get(instance.id)
        if result is None or not result.healthy:
            continue
        loaded = None if result.loaded is None else {tagged(n) for n in result.loaded}
        for model in result.models:
            name = tagged(model["name"])
            holders.setdefault(name, []).append({
                "id": instance.id,
                "loaded": None if loaded is None else name in loaded,
                "digest": model.get("digest"),
            })
    out = []
    for name in sorted(holders):
        entries = holders[name]
        counts = Counter(e["digest"] for e in entries if e["digest"])
        majority = None
        if len(counts) > 1:
            (top, top_count), (_, second_count) = counts.most_common(2)
            majority = top if top_count > second_count else None
        for entry in entries:
            entry["digest_differs"] = len(counts) > 1 and bool(entry["digest"]) and entry["digest"] != majority
        out.append({"model": name, "instances": entries})
    return out


@app.command()
def models(json_output: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """Show which model is on which instance (from the health cache; stale entries are re-checked).

    A `differs` mark means that instance's copy of the tag is another build (digest) than the rest.

    Example: ollamactl models --json | jq -r '.[] | select(any(.instances[]; .digest_differs)) | .model'
    """
    from ollamactl.core import health as core
    from ollamactl.core import state

    reg = registry.load()
    instances = _targets(reg, None, False)
    timeout, concurrency = _settings(reg, None)
    data = state.read()
    now = time.time()
    ttl = float(reg.setting("health_ttl"))
    results: dict[str, HealthResult] = {}
    stale = []
    for instance in instances:
        hit = core.cached(data, instance, now, ttl)
        if hit is None:
            stale.append(instance)
        else:
            results[instance.id] = hit
    if stale:
        try:
            fresh = core.check(stale, timeout, concurrency)
        except KeyboardInterrupt:
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        core.save(fresh)
        results.update((r.id, r) for r in fresh)
    for instance in instances:
        result = results[instance.id]
        if not result.healthy:
            output.message(f"{instance.id}: unhealthy ({result.error}); its models are not listed")
    listing = model_map(instances, results)
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


# ---------------------------------------------------------------------------------------------
# simulate


def _parse_faults(specs: Sequence[str], count: int) -> dict[int, str]:
    from ollamactl.sim import FAULTS

    faults: dict[int, str] = {}
    for spec in specs:
        index_text, sep, mode = spec.partition("=")
        if not sep or not index_text.strip().isdigit():
            raise UsageError(f"--fault {spec!r} is not INDEX=MODE", "e.g. --fault 2=refuse (instances count from 1)")
        index, mode = int(index_text), mode.strip()
        if not 1 <= index <= count:
            raise UsageError(f"--fault {spec!r}: index {index} is not between 1 and {count}")
        if mode not in FAULTS:
            raise UsageError(f"--fault {spec!r}: unknown mode {mode!r}", f"choose from {', '.join(FAULTS)}")
        faults[index] = mode
    return faults


def _register(urls: list[str]) -> list[str]:
    """Add sim-1..sim-N for these URLs, reusing an entry that already has the URL; returns the ids."""
    from ollamactl.core import registry_ops
    from ollamactl.core.urls import normalise_url

    ids = []
    for number, url in enumerate(urls, start=1):
        normalised = normalise_url(url)
        existing = next((i for i in registry.load().instances if i.url == normalised), None)
        if existing is not None:
            output.message(f"{url} is already registered as {existing.id}; reusing it")
            ids.append(existing.id)
            continue
        name = f"sim-{number}"
        taken = {ref for i in registry.load().instances for ref in (i.id, i.name)}
        instance = registry_ops.add(url, name=name if name not in taken else None)
        ids.append(instance.id)
    return ids


@app.command()
def simulate(
    count: int = typer.Option(3, "--instances", "-n", metavar="N", help="How many simulated servers."),
    base_port: int = typer.Option(0, "--base-port", metavar="P",
                                  help="Listen on P, P+1, ... (0: any free ports; e.g. 11500)."),
    register: bool = typer.Option(False, "--register", help="Add them to the registry as sim-1..sim-N."),
    fault: list[str] | None = typer.Option(None, "--fault", metavar="INDEX=MODE",
                                           help="Start instance INDEX (from 1) in a fault mode: refuse, hang,"
                                                " http500, busy503, garbage, midstream, truncated, drip."),
) -> None:
    """Run simulated Ollama servers on loopback until Ctrl-C (for demos and trying ollamactl out).

    Example: ollamactl simulate --instances 3 --base-port 11500 --register --fault 2=http500
    """
    if count < 1:
        raise UsageError(f"--instances must be at least 1, got {count}")
    if base_port < 0 or base_port + count - 1 > 65535:
        raise UsageError(f"--base-port {base_port} does not leave room for {count} ports")
    from ollamactl import sim as simulator

    faults = _parse_faults(fault or [], count)
    configs = [simulator.SimConfig(name=f"sim-{n}", fault=faults.get(n)) for n in range(1, count + 1)]

    def ready(instances: list[Any]) -> None:
        urls = [i.url for i in instances]
        for url in urls:
            typer.echo(url)
        sys.stdout.flush()
        if register:
            ids = _register(urls)
            output.message(f"registered as {', '.join(ids)}")
        control = getattr(simulator, "CONTROL_PATH", None)
        if control:
            output.message(
                f"change a fault at run time: curl -X POST -d '{{\"fault\": \"http500\"}}' {urls[0]}{control}"
                " (\"fault\": null clears it; \"refuse\" closes the port, so it cannot be undone that way)"
            )
        output.message(f"serving {len(urls)} simulated instance(s); press Ctrl-C to stop")

    try:
        simulator.serve_forever(count, base_port=base_port, configs=configs, ready=ready)
    except KeyboardInterrupt:  # pragma: no cover - serve_forever handles it itself
        pass
    except OSError as exc:
        raise OllamactlError(f"cannot listen: {exc.strerror or exc}",
                         "choose another --base-port, or 0 for any free ports") from None
    output.message("simulator stopped")
