"""Watching instances: each one is probed on its own schedule, so a hung instance delays only itself.

Every instance gets its own loop (probe, report, wait until `interval` after the probe began,
again) over one shared client, and a ticker calls back every `tick` seconds so a view can show
how long a probe has been running. Results are saved to the store as they arrive (health.Saver),
which keeps the shared cache fresh for every `pick` while a watch runs. Never prints: callbacks
carry the news. Ctrl-C (KeyboardInterrupt from asyncio.run) ends every probe without leftovers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ollamactl.core.health import probe as health

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl.core.health.probe import HealthResult, OnResult
    from ollamactl.core.registry.instances import Instance
    from ollamactl.core.state.store import Store

OnStart = Callable[[str], None]  # instance id, as its probe begins
Roster = Callable[[], "Sequence[Instance]"]  # the instances to watch now (called every tick)
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Schedule:
    """When a watch probes: each instance every `interval` s (start to start), each probe within
    `timeout` s, at most `concurrency` at once; the ticker calls back every `tick` s."""

    interval: float
    timeout: float
    concurrency: int
    tick: float = 1.0


@dataclass(frozen=True)
class Hooks:
    """What a watch tells its caller (a probe begins, a result, a tick), when it ends (`stop()`
    true, checked after every result and tick; None: never) and how it waits (`sleep`; None:
    asyncio.sleep; a test drives the loop with its own)."""

    on_start: OnStart
    on_result: OnResult
    on_tick: Callable[[], None]
    stop: Callable[[], bool] | None = None
    sleep: Sleep | None = None


def watch(instances: Sequence[Instance] | Roster, schedule: Schedule, hooks: Hooks, *, store: Store | None,
          keys: Sequence[str] | None = None) -> None:
    """Probe each instance as `schedule` says until `hooks.stop()` is true or for ever, saving
    results to `store` as they arrive. A callback that raises ends the watch with that error.
    `instances` may be a function, asked again before every tick: the watch follows its answer (an
    instance that appears is probed from then on, one that goes stops being probed, one that changed
    is probed as it is now). Every key in `keys` and of the instances watched is scrubbed from what
    the servers said."""
    import asyncio

    roster = instances if callable(instances) else (lambda: instances)
    first = list(roster())
    if not first and not callable(instances):
        return
    asyncio.run(_watch(roster, first, schedule, hooks, store, keys, callable(instances)))


async def _watch(roster: Roster, first: list[Instance], schedule: Schedule, hooks: Hooks, store: Store | None,
                 keys: Sequence[str] | None, follows: bool) -> None:
    import asyncio

    from ollamactl.core.registry.keys import keys_of

    stop = hooks.stop or (lambda: False)
    sleep = hooks.sleep or asyncio.sleep
    concurrency = schedule.concurrency
    slots = health.probe_slots(concurrency, concurrency if follows else len(first))  # as in health.check
    semaphore = asyncio.Semaphore(slots)
    secrets = set(keys_of(first) if keys is None else keys)
    saver = health.Saver(store) if store is not None else None
    finished = asyncio.Event()
    failures: list[BaseException] = []

    async def follow(client: object, instance: Instance) -> None:
        while not finished.is_set():
            began = time.monotonic()
            async with semaphore:
                hooks.on_start(instance.id)
                result: HealthResult = health.scrubbed(
                    await health.probe(client, instance, schedule.timeout), tuple(secrets))  # type: ignore[arg-type]
            if saver is not None:
                saver.add(result)
            hooks.on_result(result)
            if stop():
                finished.set()
            await sleep(max(0.0, schedule.interval - (time.monotonic() - began)))

    def ended(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())  # type: ignore[arg-type]
            finished.set()

    watched: dict[str, tuple[Instance, asyncio.Task[None]]] = {}
    stopped: list[asyncio.Task[None]] = []

    def start(client: object, instances: Sequence[Instance]) -> None:
        """Probe exactly `instances` from now on: new ones start, gone or changed ones stop."""
        wanted = {i.id: i for i in instances}
        stopped[:] = [task for task in stopped if not task.done()]
        for instance_id, (instance, task) in list(watched.items()):
            if wanted.get(instance_id) != instance:
                task.cancel()
                stopped.append(task)
                del watched[instance_id]
        secrets.update(keys_of(instances))
        for instance in instances:
            if instance.id not in watched:
                task = asyncio.ensure_future(follow(client, instance))
                task.add_done_callback(ended)
                watched[instance.id] = (instance, task)

    async def ticker(client: object) -> None:
        while not finished.is_set():
            await sleep(schedule.tick)
            if follows:
                start(client, roster())
            hooks.on_tick()
            if stop():
                finished.set()

    async with health.probe_client(slots) as client:
        start(client, first)
        clock = asyncio.ensure_future(ticker(client))
        clock.add_done_callback(ended)
        try:
            await finished.wait()
            if failures:
                raise failures[0]
        finally:
            tasks = [clock, *stopped, *(task for _, task in watched.values())]
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)  # let the probes close their connections
            if saver is not None:
                saver.flush()
