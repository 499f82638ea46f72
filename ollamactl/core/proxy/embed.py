"""Fleet-wide embeddings: batches fanned out over every eligible instance, written in input order.

The request rules (timeouts, keys, redirects, error classes) are ollamactl.core.proxy.generate's; this module
adds the fan-out: a shared queue, retries on another instance (embeddings are idempotent), hedging
of a batch stuck on a slow instance, and a bounded read-ahead of the input. Each answer is read
whole within the first-byte timeout and up to `answer_limit(len(texts))` bytes; a server that stops
answering while a batch waits on it fails that batch at once (core/health/liveness.py), and the batch goes
to another instance.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from ollamactl.core import server_json, settings
from ollamactl.core.health import liveness
from ollamactl.core.http import (
    ERROR_BODY_LIMIT,
    MB,
    AllFailed,
    NotOllama,
    OllamaError,
    RouteMissing,
    Timeout,
    Timeouts,
    TooLarge,
    client_options,
    headers_for,
    label,
    network_error,
    read_capped,
    seconds,
    status_error,
)
from ollamactl.core.metrics import counters as metrics
from ollamactl.core.proxy.generate import Log

if TYPE_CHECKING:  # pragma: no cover
    import asyncio

    import httpx

    from ollamactl.core.health.breaker import Feedback
    from ollamactl.core.registry.instances import Instance

HEDGE_MIN_S = 1.0  # an embedding batch running this long (and 4x the usual) may be duplicated elsewhere
ANSWER_BASE = 1 * MB  # an embedding answer may hold this much more than its vectors
ANSWER_PER_TEXT = MB // 4  # bytes of JSON per vector allowed (an 8192-dim float vector is ~100 KB)


def answer_limit(texts: int) -> int:
    """The largest embedding answer accepted for `texts` texts: bounded, and scaled to the batch."""
    return ANSWER_BASE + ANSWER_PER_TEXT * texts


def make_client(timeouts: Timeouts, instances: Sequence[Instance] = (), connections: int = 4) -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(**client_options(timeouts, instances, connections))


def model_digests(candidates: Sequence[Instance], health: dict[str, dict], model: str) -> dict[str, str]:
    """{instance id: digest} of `model` per the cached health entries (instances without one are left out)."""
    from ollamactl.model_names import normalise_model

    wanted = normalise_model(model)
    digests = {}
    for instance in candidates:
        for entry in (health.get(instance.id) or {}).get("models") or ():
            if entry.get("name") and normalise_model(entry["name"]) == wanted and entry.get("digest"):
                digests[instance.id] = entry["digest"]
    return digests


@dataclass(frozen=True)
class EmbedRequest:
    """One fleet-wide embedding job, as typed values: the model and where its batches may go."""

    model: str
    instance: str | None = None  # only this instance; else every eligible one at once
    allow_mixed: bool = False  # use instances whose builds (digests) of the model differ
    per_instance: int = settings.DEFAULT_PER_INSTANCE  # requests in flight per instance
    wait: float | None = None  # seconds to wait while every instance is at its max_inflight
    strict: bool = False  # no fallback to the default instance
    timeouts: Timeouts | None = None  # None: the registry's settings


class EmbedFields(TypedDict, total=False):
    """The keywords `Fleet.embed` takes, typed for a type checker: EmbedRequest's fields after
    `model` (tests/test_library_types.py holds the two alike)."""

    instance: str | None
    allow_mixed: bool
    per_instance: int
    wait: float | None
    strict: bool
    timeouts: Timeouts | None


@dataclass
class EmbedSummary:
    texts: int = 0
    batches: int = 0
    per_instance: dict[str, int] = field(default_factory=dict)  # batches served by each instance id
    failures: list[tuple[str, str]] = field(default_factory=list)  # (instance id, reason)
    hedged: int = 0


class _Batch:
    __slots__ = ("index", "start", "texts", "failed_on", "running", "done")

    def __init__(self, index: int, start: int, texts: list[str]):
        self.index = index
        self.start = start
        self.texts = texts
        self.failed_on: dict[str, OllamaError] = {}
        self.running: dict[str, tuple[asyncio.Future, float]] = {}  # instance id -> (request, started)
        self.done = False


Write = Callable[[int, list], None]  # (index of the first text, vectors), called in input order


class Embedder:
    """Embeds batches on every instance at once: `per_instance` requests in flight on each, fed from
    one queue (fast instances take more), results written in input order as soon as they can be.

    A failed batch goes to another instance; an instance that failed is avoided for new batches
    while others still work; a batch that failed on every instance ends the job. When there is
    nothing else to do, a batch stuck on one instance far longer than usual is also sent to an idle
    one (embeddings are idempotent) and the first answer wins. Input is read lazily on a daemon
    thread, at most `window` batches ahead of the output, so memory stays bounded.
    """

    def __init__(self, instances: Sequence[Instance], model: str, batches: Iterable[list[str]], write: Write, *,
                 timeouts: Timeouts, per_instance: int = settings.DEFAULT_PER_INSTANCE, log: Log | None = None,
                 progress: Callable[[int], None] | None = None, feedback: Feedback | None = None):
        if not instances:
            raise ValueError("no instances")
        self.instances = list(instances)
        self.ids = {i.id for i in self.instances}
        self.model = model
        self.batches = iter(batches)
        self.write = write
        self.timeouts = timeouts
        self.per_instance = max(1, per_instance)
        self.log = log
        self.progress = progress
        self.feedback = feedback
        self.inputs_served: dict[str, int] = {}  # texts embedded, per instance id
        slots = self.per_instance * len(self.instances)
        self.window = 2 * slots + 2
        self.summary = EmbedSummary()
        self.legacy: set[str] = set()
        self.avoided: set[str] = set()
        self.ready: deque[_Batch] = deque()
        self.retry: list[_Batch] = []
        self.running: dict[int, _Batch] = {}
        self.results: dict[int, _Batch] = {}
        self.vectors: dict[int, list] = {}
        self.next_write = 0
        self.written = 0
        self.exhausted = False
        self.error: BaseException | None = None
        self.stopping = False
        self.typical: float | None = None  # moving average of a batch's duration, s
        self.latency: dict[str, float] = {}
        self.last_ok: dict[str, bool] = {}
        self._event: asyncio.Event | None = None
        self._slots = threading.Semaphore(self.window)
        self._superseded: set[asyncio.Future] = set()  # requests we cancelled on purpose

    # -- coordination --------------------------------------------------------------------------

    def _changed(self) -> None:
        import asyncio

        assert self._event is not None
        self._event.set()
        self._event = asyncio.Event()

    async def _wait(self, timeout: float | None = None) -> None:
        import asyncio

        assert self._event is not None
        event = self._event
        if timeout is None:
            await event.wait()
            return
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _usable(self, instance_id: str) -> bool:
        return instance_id not in self.avoided or self.avoided >= self.ids

    def _hedge_after(self) -> float:
        return max(HEDGE_MIN_S, 4 * (self.typical or 0.0))

    def _take(self, instance_id: str) -> tuple[_Batch | None, float | None]:
        """A batch for `instance_id` now, else (None, seconds until a hedge may become possible)."""
        if not self._usable(instance_id):
            return None, None
        for batch in self.retry:
            if instance_id not in batch.failed_on:
                self.retry.remove(batch)
                return batch, None
        if self.ready:
            return self.ready.popleft(), None
        soonest = None
        now = time.monotonic()
        limit = self._hedge_after()
        for index in sorted(self.running):
            batch = self.running[index]
            if len(batch.running) != 1 or instance_id in batch.running or instance_id in batch.failed_on:
                continue
            (_, started), = batch.running.values()
            wait = started + limit - now
            if wait <= 0:
                self.summary.hedged += 1
                if self.log:
                    holder = next(iter(batch.running))
                    self.log(f"batch {index + 1} has run {now - started:.1f} s on {holder}; also sending it"
                             f" to {instance_id}")
                return batch, None
            soonest = wait if soonest is None else min(soonest, wait)
        return None, soonest

    def _finished(self) -> bool:
        return self.exhausted and not self.ready and not self.retry and not self.running and not self.results

    # -- input (a daemon thread: a blocked stdin must never hold up exit) --------------------------

    def _reader(self, loop: asyncio.AbstractEventLoop) -> None:
        def hand(function: Callable, argument: Any) -> bool:
            if self.stopping:
                return False
            try:
                loop.call_soon_threadsafe(function, argument)
            except RuntimeError:  # the loop has closed: the job ended without this input
                return False
            return True

        try:
            for texts in self.batches:
                self._slots.acquire()
                if not hand(self._add, texts):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, raised from run()
            hand(self._input_ended, exc)
            return
        hand(self._input_ended, None)

    def _add(self, texts: list[str]) -> None:
        batch = _Batch(self.summary.batches, self.summary.texts, list(texts))
        self.summary.batches += 1
        self.summary.texts += len(batch.texts)
        self.ready.append(batch)
        self._changed()

    def _input_ended(self, error: BaseException | None) -> None:
        self.exhausted = True
        if error is not None and self.error is None:
            self._abort(error)
        self._changed()

    # -- work ------------------------------------------------------------------------------------

    async def run(self) -> EmbedSummary:
        import asyncio

        loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        connections = self.per_instance * len(self.instances) * 2
        async with make_client(self.timeouts, self.instances, connections) as client:
            self.client = client
            threading.Thread(target=self._reader, args=(loop,), name="ollamactl-embed-input", daemon=True).start()
            workers = [asyncio.ensure_future(self._work(instance))
                       for instance in self.instances for _ in range(self.per_instance)]
            try:
                await asyncio.gather(*workers)
            finally:
                self.stopping = True
                self._slots.release()  # let a reader blocked on the window see `stopping`
                for task in workers:
                    task.cancel()
                for batch in list(self.running.values()):
                    for request, _ in batch.running.values():
                        request.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
        if self.feedback is not None:
            self._feed_back()
        if self.error is not None:
            raise self.error
        return self.summary

    def _feed_back(self) -> None:
        """Each instance's batches and inputs served go to the metrics; an instance whose last answer
        was good closes its breaker (not when the job failed: it did not end well)."""
        assert self.feedback is not None
        for instance_id in dict.fromkeys([*self.last_ok, *self.summary.per_instance]):
            batches = self.summary.per_instance.get(instance_id, 0)
            sample = metrics.Sample(model=self.model, requests=batches,
                                    inputs=self.inputs_served.get(instance_id, 0)) if batches else None
            if self.last_ok.get(instance_id) and self.error is None:
                self.feedback.success(instance_id, self.latency.get(instance_id), sample)
            elif sample is not None:
                self.feedback.count(instance_id, sample)

    async def _work(self, instance: Instance) -> None:
        import asyncio

        iid = instance.id
        while True:
            while True:
                if self.error is not None or self._finished():
                    return
                batch, wait = self._take(iid)
                if batch is not None:
                    break
                await self._wait(wait)
            started = time.monotonic()
            request = asyncio.ensure_future(self._embed(instance, batch.texts))
            if not batch.running:
                self.running[batch.index] = batch
            batch.running[iid] = (request, started)
            try:
                vectors = await request
            except asyncio.CancelledError:
                batch.running.pop(iid, None)
                ours = request in self._superseded
                self._superseded.discard(request)
                task = asyncio.current_task()
                if not ours or self.stopping or (task is not None and getattr(task, "cancelling", int)()):
                    raise
                continue  # another instance answered this batch first, or the job was aborted
            except OllamaError as error:
                batch.running.pop(iid, None)
                self._failed(batch, instance, error)
                continue
            batch.running.pop(iid, None)
            self._succeeded(batch, instance, vectors, time.monotonic() - started)

    def _succeeded(self, batch: _Batch, instance: Instance, vectors: list, elapsed: float) -> None:
        iid = instance.id
        self.last_ok[iid] = True
        previous = self.latency.get(iid)
        self.latency[iid] = elapsed * 1000 if previous is None else previous + 0.3 * (elapsed * 1000 - previous)
        self.typical = elapsed if self.typical is None else self.typical + 0.2 * (elapsed - self.typical)
        if batch.done:
            return
        batch.done = True
        self.summary.per_instance[iid] = self.summary.per_instance.get(iid, 0) + 1
        self.inputs_served[iid] = self.inputs_served.get(iid, 0) + len(batch.texts)
        for other, (request, other_started) in list(batch.running.items()):
            self._superseded.add(request)
            request.cancel()  # a hedged copy lost the race; the slower original means a slow instance
            if other_started < time.monotonic() - elapsed:
                self.avoided.add(other)
        self.running.pop(batch.index, None)
        self.results[batch.index] = batch
        self.vectors[batch.index] = vectors
        while self.next_write in self.results:
            done = self.results.pop(self.next_write)
            self.write(done.start, self.vectors.pop(self.next_write))
            self.written += len(done.texts)
            self.next_write += 1
            self._slots.release()
            if self.progress:
                self.progress(self.written)
        self._changed()

    def _failed(self, batch: _Batch, instance: Instance, error: OllamaError) -> None:
        iid = instance.id
        self.last_ok[iid] = False
        self.summary.failures.append((iid, error.reason))
        if self.feedback is not None:
            self.feedback.failure(instance, error, self.model)
        if batch.done:
            return
        batch.failed_on[iid] = error
        self.avoided.add(iid)
        if self.log:
            self.log(f"batch {batch.index + 1} failed on {label(instance)}: {error.reason}")
        if batch.running:
            return  # a hedged copy is still running elsewhere
        self.running.pop(batch.index, None)
        if set(batch.failed_on) >= self.ids:
            first, last = batch.start + 1, batch.start + len(batch.texts)
            attempts = [(i, batch.failed_on[i.id]) for i in self.instances]
            self._abort(AllFailed(attempts, f"batch {batch.index + 1} (texts {first}-{last}) failed on every"
                                            " instance"))
            return
        self.retry.append(batch)
        self.retry.sort(key=lambda b: b.index)
        self._changed()

    def _abort(self, error: BaseException) -> None:
        self.error = error
        for batch in self.running.values():
            for request, _ in batch.running.values():
                self._superseded.add(request)
                request.cancel()
        self._changed()

    # -- requests --------------------------------------------------------------------------------

    async def _embed(self, instance: Instance, texts: list[str]) -> list:
        if instance.id in self.legacy:
            return await self._embed_legacy(instance, texts)
        try:
            data = await self._post(instance, "/api/embed", {"model": self.model, "input": texts},
                                    answer_limit(len(texts)))
        except RouteMissing:
            self.legacy.add(instance.id)
            if self.log:
                self.log(f"{label(instance)} has no /api/embed; using the legacy /api/embeddings, one text at a time")
            return await self._embed_legacy(instance, texts)
        vectors = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(texts) or not all(
                isinstance(v, list) for v in vectors):
            count = len(vectors) if isinstance(vectors, list) else "no"
            raise NotOllama(f"answered {count} embeddings for {len(texts)} texts", instance)
        return vectors

    async def _embed_legacy(self, instance: Instance, texts: list[str]) -> list:
        vectors = []
        for text in texts:
            try:
                data = await self._post(instance, "/api/embeddings", {"model": self.model, "prompt": text},
                                        answer_limit(1))
            except RouteMissing as error:
                raise RouteMissing("HTTP 404: neither /api/embed nor /api/embeddings exists (not an Ollama"
                                   " server?)", instance, error.status) from None
            vector = data.get("embedding") if isinstance(data, dict) else None
            if not isinstance(vector, list) or not vector:
                raise NotOllama("the legacy /api/embeddings answer has no embedding", instance)
            vectors.append(vector)
        return vectors

    async def _post(self, instance: Instance, path: str, body: dict, limit: int) -> Any:
        """POST `body`; the parsed answer of at most `limit` bytes, all of it within the first-byte
        timeout, and ended early when the server stops answering (core/health/liveness.py)."""
        import asyncio

        import httpx

        content = json.dumps(body).encode()
        deadline = self.timeouts.first_byte
        try:
            answer = await asyncio.wait_for(
                liveness.while_alive(self._send(instance, path, content, limit), instance, self.timeouts), deadline)
        except asyncio.TimeoutError:
            raise Timeout(f"no answer within the first-byte timeout ({seconds(deadline)} s)", instance) from None
        except httpx.HTTPError as exc:
            raise network_error(exc, instance, self.timeouts) from None
        try:
            return server_json.loads(answer)
        except ValueError as error:
            raise NotOllama(server_json.not_ollama(error), instance) from None

    async def _send(self, instance: Instance, path: str, content: bytes, limit: int) -> bytes:
        async with self.client.stream("POST", instance.url + path, content=content,
                                      headers=headers_for(instance)) as response:
            if response.status_code != 200:
                message, _ = await read_capped(response, ERROR_BODY_LIMIT)
                raise status_error(response.status_code, message, response.headers.get("location"),
                                   response.reason_phrase, instance)
            answer, whole = await read_capped(response, limit)
        if not whole:
            raise TooLarge(limit, instance)
        return answer


def embed(instances: Sequence[Instance], model: str, batches: Iterable[list[str]], write: Write,
          **kwargs: Any) -> EmbedSummary:
    """Run an Embedder from synchronous code."""
    import asyncio

    return asyncio.run(Embedder(instances, model, batches, write, **kwargs).run())


def batched(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
