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
from typing import TYPE_CHECKING

from ollamactl.core.health import probe as health

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl.core.health.probe import HealthResult, OnResult
    from ollamactl.core.registry.instances import Instance
    from ollamactl.core.state.store import Store

OnStart = Callable[[str], None]  # instance id, as its probe begins
Roster = Callable[[], "Sequence[Instance]"]  # the instances to watch now (called every tick)
Sleep = Callable[[float], Awaitable[None]]


def watch(instances: Sequence[Instance] | Roster, *, timeout: float, interval: float, concurrency: int,
          store: Store | None, on_start: OnStart, on_result: OnResult, on_tick: Callable[[], None], tick: float = 1.0,
          stop: Callable[[], bool] | None = None, keys: Sequence[str] | None = None,
          sleep: Sleep | None = None) -> None:
    """Probe each instance every `interval` s (start to start) until `stop()` is true (checked after
    every result and tick) or for ever. A callback that raises ends the watch with that error.
    `instances` may be a function, asked again before every tick: the watch follows its answer (an
    instance that appears is probed from then on, one that goes stops being probed, one that changed
    is probed as it is now). Every key in `keys` and of the instances watched is scrubbed from what
    the servers said. `sleep` waits between probes and ticks (default asyncio.sleep; a test drives
    the loop with its own)."""
    import asyncio

    roster = instances if callable(instances) else (lambda: instances)
    first = list(roster())
    if not first and not callable(instances):
        return
    asyncio.run(_watch(roster, first, timeout, interval, concurrency, store, on_start, on_result, on_tick, tick,
                       stop or (lambda: False), keys, sleep or asyncio.sleep, callable(instances)))


async def _watch(roster: Roster, first: list[Instance], timeout: float, interval: float, concurrency: int,
                 store: Store | None, on_start: OnStart, on_result: OnResult, on_tick: Callable[[], None], tick: float,
                 stop: Callable[[], bool], keys: Sequence[str] | None, sleep: Sleep, follows: bool) -> None:
    import asyncio

    from ollamactl.core.registry.keys import keys_of

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
                on_start(instance.id)
                result: HealthResult = health.scrubbed(
                    await health.probe(client, instance, timeout), tuple(secrets))  # type: ignore[arg-type]
            if saver is not None:
                saver.add(result)
            on_result(result)
            if stop():
                finished.set()
            await sleep(max(0.0, interval - (time.monotonic() - began)))

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
            await sleep(tick)
            if follows:
                start(client, roster())
            on_tick()
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
