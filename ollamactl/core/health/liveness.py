"""Liveness while an answer is awaited: does the server still answer at all?

A first byte may rightly take minutes (a cold model load), so the first-byte timeout is long. But
a loading Ollama still answers `GET /api/version` at once; a hung server does not. So while run,
embed, load and pull wait on an instance, it is asked every `Timeouts.alive_every` seconds
(`[settings] liveness_interval`), each time within `Timeouts.alive_within` (the health probe's
`timeout`); the first time it does not answer, the wait ends with a retryable Unresponsive error
that says why, and the caller fails over (nothing has reached the user yet); run and embed's
breaker feedback also records it as a failed health check, so the next commands leave it out. Any HTTP answer counts:
the server is there, whatever it says. The checks run beside the request (a thread for run's
synchronous stream, a task for the async callers), never before it: the request goes out at once.

Cheap to import: asyncio and the probe client load only when a check is due.
"""

from __future__ import annotations

from ollamactl.core.http import Unresponsive, headers_for, seconds

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Awaitable
    from typing import TypeVar

    from ollamactl.core.http import Timeouts
    from ollamactl.core.registry.instances import Instance

    T = TypeVar("T")

ANSWER_LIMIT = 4096  # bytes of the /api/version answer read (it is only proof of life)


async def silent(instance: Instance, within: float) -> str | None:
    """Why `instance` gave no answer to `GET /api/version` within `within` s, or None if it answered."""
    import asyncio

    from ollamactl.core.health.probe import probe_client
    from ollamactl.core.health.probe_wire import ProbeError

    async with probe_client(1) as client:
        try:
            await asyncio.wait_for(client.get(instance.url.rstrip("/") + "/api/version", headers_for(instance),
                                              ANSWER_LIMIT, ANSWER_LIMIT), within)
        except asyncio.TimeoutError:
            return f"no answer to /api/version within {seconds(within)} s"
        except ProbeError as error:
            return f"/api/version: {error.words}"
    return None


def silent_now(instance: Instance, within: float) -> str | None:
    """`silent` from synchronous code (run's watchdog thread)."""
    import asyncio

    return asyncio.run(silent(instance, within))


def stopped(instance: Instance, why: str) -> Unresponsive:
    """The error of a wait ended because the server stopped answering."""
    return Unresponsive(f"stopped answering while its answer was awaited ({why})", instance)


async def watch(instance: Instance, timeouts: Timeouts) -> str:
    """Ask `instance` every `alive_every` s; return why once it does not answer (never while it does)."""
    import asyncio

    while True:
        await asyncio.sleep(timeouts.alive_every)
        why = await silent(instance, timeouts.alive_within)
        if why is not None:
            return why


async def while_alive(work: Awaitable[T], instance: Instance, timeouts: Timeouts) -> T:
    """`work`'s result, or `stopped(...)` raised as soon as `instance` stops answering (`work` is
    cancelled then). `work` starts at once; the first check comes `alive_every` s later."""
    import asyncio

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(watch(instance, timeouts))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watcher):
            pending.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.done() and not task.cancelled():
        return task.result()
    if watcher.done() and not watcher.cancelled():
        raise stopped(instance, watcher.result())
    return task.result()  # cancelled from outside: raises CancelledError
