"""Watching instances: each one is probed on its own schedule, so a hung instance delays only itself.

Every instance gets its own loop (probe, report, wait until `interval` after the probe began,
again) over one shared client, and a ticker calls back every `tick` seconds so a view can show
how long a probe has been running. Results are saved to the store as they arrive (health.Saver),
which keeps the shared cache fresh for every `pick` while a watch runs. Never prints: callbacks
carry the news. Ctrl-C (KeyboardInterrupt from asyncio.run) ends every probe without leftovers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ollamactl.core import health

if TYPE_CHECKING:  # pragma: no cover
    from ollamactl.core.health import HealthResult, OnResult
    from ollamactl.core.registry import Instance
    from ollamactl.core.store import Store

OnStart = Callable[[str], None]  # instance id, as its probe begins


def watch(instances: Sequence[Instance], *, timeout: float, interval: float, concurrency: int, store: Store | None,
          on_start: OnStart, on_result: OnResult, on_tick: Callable[[], None], tick: float = 1.0,
          stop: Callable[[], bool] | None = None, keys: Sequence[str] | None = None) -> None:
    """Probe each instance every `interval` s (start to start) until `stop()` is true (checked after
    every result and tick) or for ever. A callback that raises ends the watch with that error.
    Every key in `keys` (default: those of `instances`) is scrubbed from what the servers said."""
    import asyncio

    if not instances:
        return
    asyncio.run(_watch(list(instances), timeout, interval, concurrency, store, on_start, on_result, on_tick, tick,
                       stop or (lambda: False), keys))


async def _watch(instances: list[Instance], timeout: float, interval: float, concurrency: int, store: Store | None,
                 on_start: OnStart, on_result: OnResult, on_tick: Callable[[], None], tick: float,
                 stop: Callable[[], bool], keys: Sequence[str] | None) -> None:
    import asyncio

    from ollamactl.core.keys import keys_of

    slots = health.probe_slots(concurrency, len(instances))  # as in health.check
    semaphore = asyncio.Semaphore(slots)
    secrets = keys_of(instances) if keys is None else tuple(keys)
    saver = health.Saver(store) if store is not None else None
    finished = asyncio.Event()

    async def follow(client: object, instance: Instance) -> None:
        while not finished.is_set():
            began = time.monotonic()
            async with semaphore:
                on_start(instance.id)
                result: HealthResult = health.scrubbed(
                    await health.probe(client, instance, timeout), secrets)  # type: ignore[arg-type]
            if saver is not None:
                saver.add(result)
            on_result(result)
            if stop():
                finished.set()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - began)))

    async def ticker() -> None:
        while not finished.is_set():
            await asyncio.sleep(tick)
            on_tick()
            if stop():
                finished.set()

    async with health.probe_client(slots) as client:
        tasks = [asyncio.ensure_future(follow(client, i)) for i in instances]
        tasks.append(asyncio.ensure_future(ticker()))
        waiting = asyncio.ensure_future(finished.wait())
        for task in (waiting, *tasks):
            task.add_done_callback(health.retrieve)
        try:
            done, _ = await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not waiting and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in (waiting, *tasks):
                task.cancel()
            await asyncio.wait([waiting, *tasks])  # let the probes close their connections
            if saver is not None:
                saver.flush()
