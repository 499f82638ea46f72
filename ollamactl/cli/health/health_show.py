"""The bodies of `health` (and --watch), `refresh` and `models`: Typer-free, so scripts' health
checks start like a tool (the launcher's fast route calls them; so do the Typer commands in
cli/health/health_cmds.py). `health` and `refresh` return their exit code.
"""

from __future__ import annotations

import sys
import time

from ollamactl import ExitCode, Fleet, Instance, checked_number
from ollamactl.cli import output
from ollamactl.cli.context import fleet
from ollamactl.cli.health import health_view

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

    from ollamactl import HealthResult


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _exit_code(results: Sequence[HealthResult]) -> int:
    healthy = sum(1 for r in results if r.healthy)
    if healthy == len(results):
        return ExitCode.OK
    return ExitCode.NO_INSTANCE if healthy == 0 else ExitCode.SOME_UNHEALTHY


# ---------------------------------------------------------------------------------------------
# health / --watch


def _watch(current: Fleet, refs: list[str] | None, include_all: bool, timeout: float | None, interval: float,
           json_output: bool) -> None:
    """Each instance probed on its own schedule (core/health/monitor); the view changes row by row and
    follows the registry (an instance added or removed meanwhile appears or goes at the next tick)."""
    import json

    registered = current.following(refs or (), include_all)
    view = health_view.WatchView(registered())
    ejected = current.ejections(time.time())

    def instances() -> list[Instance]:
        view.follow(registered())
        return view.instances

    def on_result(result: HealthResult) -> None:
        view.finished(result)
        instance = view.instance(result.id)
        if json_output and instance is not None:  # one JSON object per probe result (JSON Lines)
            row = health_view.json_row(instance, result, ejected, time.time())
            sys.stdout.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
            sys.stdout.flush()

    def on_tick() -> None:
        ejected.clear()
        ejected.update(current.ejections(time.time()))

    if json_output:
        current.watch(instances, interval=interval, timeout=timeout, on_start=view.started, on_result=on_result,
                      on_tick=on_tick)
        return
    if not sys.stdout.isatty():  # plain text: one table every interval, no cursor tricks
        def show_plain() -> None:
            on_tick()
            output.show(view.table(ejected, title=f"health at {time.strftime('%H:%M:%S')}"))
            sys.stdout.write("\n")
            sys.stdout.flush()

        current.watch(instances, interval=interval, timeout=timeout, on_start=view.started, on_result=on_result,
                      on_tick=show_plain, tick=interval)
        return

    def title() -> str:
        return f"health every {interval:g} s, {time.strftime('%H:%M:%S')} (Ctrl-C to stop)"

    with output.Live(view.table(ejected, title())) as live:
        def redraw() -> None:
            live.update(view.table(ejected, title()))

        def on_live_result(result: HealthResult) -> None:
            on_result(result)
            redraw()

        def on_live_tick() -> None:
            on_tick()
            redraw()

        current.watch(instances, interval=interval, timeout=timeout, on_start=view.started,
                      on_result=on_live_result, on_tick=on_live_tick, tick=min(1.0, interval))


# ---------------------------------------------------------------------------------------------
# health, refresh, models


def health(refs: list[str] | None, watch: bool, interval: float, timeout: float | None, json_output: bool,
           include_all: bool) -> int:
    """Check `refs` (else every enabled instance) now; show the results; the exit code."""
    if timeout is not None:
        checked_number("timeout", timeout)
    checked_number("interval", interval)
    current = fleet()
    if watch:
        _watch(current, refs, include_all, timeout, interval, json_output)
        return 0
    instances = current.targets(refs or (), include_all)
    results = current.probe(instances, timeout=timeout)
    now = time.time()
    ejected = current.ejections(now)
    if json_output:
        output.print_json([health_view.json_row(i, r, ejected, now) for i, r in zip(instances, results, strict=True)])
    else:
        rows = [(i, r, None) for i, r in zip(instances, results, strict=True)]
        output.show(health_view.health_table(rows, ejected, title=f"state store: {current.store.description}",
                                             now=now))
    return _exit_code(results)


def refresh(json_output: bool) -> int:
    """Check every enabled instance now, update the cache; a summary; the exit code."""
    results = fleet().refresh()
    healthy = sum(1 for r in results if r.healthy)
    if json_output:
        output.print_json({"total": len(results), "healthy": healthy, "unhealthy": len(results) - healthy})
    else:
        noun = "instance" if len(results) == 1 else "instances"
        sys.stdout.write(f"{len(results)} {noun}: {healthy} healthy, {len(results) - healthy} unhealthy\n")
    return _exit_code(results)


def models(json_output: bool, diff: bool) -> None:
    """Which model is on which instance, from the health cache (stale entries re-checked)."""
    current = fleet()
    results = current.health()
    for instance_id, result in results.items():
        if not result.healthy:
            output.message(f"{instance_id}: unhealthy ({result.error}); its models are not listed")
    if diff:
        from ollamactl.cli.models.model_plans import show_diff

        show_diff(current, results, json_output)
        return
    listing = current.models(results)
    if json_output:
        output.print_json(listing)
        return
    if not listing:
        output.message("no models found on any healthy instance")
        return
    names = {i.id: i.name for i in current.instances()}  # the table's only: --json names instances by id

    def rows():  # type: ignore[no-untyped-def]
        for item in listing:
            first = True
            for entry in item["instances"]:
                loaded = {None: "?", True: "yes", False: "no"}[entry["loaded"]]
                digest = (entry["digest"] or "")[:12]
                yield (item["model"] if first else "", names.get(entry["id"], entry["id"]), loaded, digest,
                       "differs" if entry["digest_differs"] else "")
                first = False

    output.table(("MODEL", "INSTANCE", "LOADED", "DIGEST", "MISMATCH"), rows(), drop=("DIGEST", "LOADED"),
                 cut={"MODEL": 20, "INSTANCE": 16})
