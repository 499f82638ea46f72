"""Health probes: is each instance up, which models does it hold, which are loaded. Never prints.

A probe of one instance is `GET /api/version`, `GET /api/tags` and `GET /api/ps`, sent at once
and bounded by ONE overall deadline (a read timeout only measures the silence between bytes, so
a server dripping a byte a second would otherwise hold a probe for ever). All instances
are probed concurrently, up to a cap: `check` (the one-shot commands) on threads over
core/health/probe_threads for up to THREADS_UP_TO instances (no asyncio to import), else, like
`check_async` (`health --watch`, `top`, discovery, pulls), on an event loop over one shared
core/health/probe_http client; both small stdlib HTTP/1.1 clients reading answers alike (core/health/probe_wire),
as the probes' CPU cost with httpx was ~5x a bare prober's. The whole check costs about as much as
the slowest instance, never the sum.

Errors are words a person can act on: `connection refused`, `timed out after 2.0 s`,
`HTTP 401: unauthorized (check the API key)`, `not an Ollama server`, `HTTP 500: <message>`,
`cannot resolve host <h>`, ...

Servers are untrusted: each answer is read up to BODY_LIMIT (beyond it: `answer too large`),
at most MAX_MODELS models are kept (with a `note` to warn about), and every configured key is
scrubbed from what a server said in words (`scrubbed`, see core/registry/keys.py) before a result is cached
or shown.

Results are kept in the state's `"health"` section (`save`); `health.cache` decides which may be
used. This module loads only when probing or reading results, asyncio only for `check_async`;
httpx only for the TLS context of an https instance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ollamactl.core import server_json
from ollamactl.core.http import (
    ERROR_BODY_LIMIT,
    MB,
    NOT_OLLAMA,
    OllamaError,
    client_headers,
    error_message,
    headers_for,
    seconds,
    short,
    too_large,
)
from ollamactl.core.registry.keys import holds, keys_of, redact
from ollamactl.core.settings import DEFAULTS
from ollamactl.core.state.schema import MAX_MODELS

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Sequence
    from typing import Any
    from typing import NamedTuple as Record

    from ollamactl.core.health.probe_http import ProbeClient
    from ollamactl.core.health.probe_threads import Client
    from ollamactl.core.health.probe_wire import Answer, AnswerTimer
    from ollamactl.core.registry.instances import Instance
    from ollamactl.core.state.store import Store
else:
    from ollamactl.core.records import Record

DEFAULT_CONCURRENCY = DEFAULTS["concurrency"]
REQUESTS_PER_PROBE = 3  # version, tags, ps: at most three connections per instance at once
# `check` probes up to this many instances on threads, more on an event loop: a thread per request
# costs ~0.65 ms more CPU per instance than asyncio, whose import costs ~40 ms (break-even ~60)
THREADS_UP_TO = 32
BODY_LIMIT = 8 * MB  # one probe answer (/api/tags of a thousand models is well under 1 MB)
MAX_NAME = 512  # characters of a model name; longer ones are not Ollama's
MAX_VERSION = 100  # characters of a version string
SAVE_EVERY_S = 0.2  # probe results are saved in batches at most this often while a check runs

OnResult = Callable[["HealthResult"], None]
Loaded = tuple["list[dict[str, Any]] | None", "str | None"]  # an instance's /api/ps models, or the error in words


class HealthResult(Record):
    """One instance's probe result (a Record, not a dataclass: reading the cache imports no inspect)."""

    id: str
    url: str
    healthy: bool
    error: str | None = None
    latency_ms: float | None = None
    version: str | None = None
    models: Sequence[dict[str, Any]] = ()  # [{"name", "digest", "size"}]
    loaded: list[str] | None = None  # None: the server cannot tell (no /api/ps)
    checked_at: float = 0.0  # epoch seconds
    note: str | None = None  # a warning for the person (models left out); not cached

    def to_cache(self) -> dict[str, Any]:
        """The state file's shape for one instance (read by the routing code: keep it stable)."""
        return {
            "url": self.url,
            "healthy": self.healthy,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "version": self.version,
            "models": [{"name": m.get("name"), "digest": m.get("digest"), "size": m.get("size")}
                       for m in self.models],
            "loaded": None if self.loaded is None else list(self.loaded),
            "checked_at": self.checked_at,
        }

    @classmethod
    def from_cache(cls, instance_id: str, data: dict[str, Any]) -> HealthResult:
        """Rebuild a result from the state file; ValueError when the entry is not of our shape."""
        from ollamactl.core.state.schema import health_entry_ok

        if not health_entry_ok(data):
            raise ValueError(f"health cache entry for {instance_id} is not of the cache's shape")
        loaded, latency = data.get("loaded"), data.get("latency_ms")
        return cls(
            id=instance_id,
            url=data["url"],
            healthy=data["healthy"],
            error=data.get("error"),
            latency_ms=None if latency is None else float(latency),
            version=data.get("version"),
            models=[{"name": m["name"], "digest": m.get("digest"), "size": m.get("size")}
                    for m in data.get("models") or ()],
            loaded=None if loaded is None else list(loaded),
            checked_at=float(data["checked_at"]),
        )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------
# The cache


def save(store: Store, results: Iterable[HealthResult]) -> None:
    """Merge `results` into the store's health section."""
    entries = {r.id: r.to_cache() for r in results}
    if not entries:
        return

    def merge(data: dict[str, Any]) -> None:
        data.setdefault("health", {}).update(entries)

    store.update(merge)


# ---------------------------------------------------------------------------------------------
# Probing


def check(
    instances: Sequence[Instance],
    timeout: float,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_result: OnResult | None = None,
    keys: Sequence[str] | None = None,
    store: Store | None = None,
) -> list[HealthResult]:
    """Probe `instances` concurrently; results in the same order. `on_result` sees each as it ends,
    on the caller's thread. Up to THREADS_UP_TO instances on threads (core/health/probe_threads: no
    asyncio to import), more with `check_async` on an event loop; the same requests and words.

    Every key in `keys` (default: those of `instances`) is scrubbed from what the servers said.
    With a `store`, results are saved as they arrive (see `Saver`), so one hung instance does not
    hold back the others' news.
    """
    from ollamactl.core.health import probe_threads

    instances = list(instances)
    if not instances:
        return []
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if len(instances) > THREADS_UP_TO:
        import asyncio

        return asyncio.run(check_async(instances, timeout, concurrency, on_result, keys, store))
    secrets = keys_of(instances) if keys is None else tuple(keys)
    saver = Saver(store) if store is not None else None
    client = probe_threads.Client(client_headers())
    results: list[HealthResult] = [None] * len(instances)  # type: ignore[list-item]  # each filled below
    try:
        for index, result in probe_threads.each(lambda instance: probe_now(client, instance, timeout), instances,
                                                probe_slots(concurrency, len(instances)),
                                                saver.due_in if saver is not None else lambda: None,
                                                saver.flush if saver is not None else lambda: None):
            results[index] = _deliver(result, secrets, saver, on_result)
    finally:
        if saver is not None:
            saver.flush()
    return results


async def check_async(
    instances: Sequence[Instance],
    timeout: float,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_result: OnResult | None = None,
    keys: Sequence[str] | None = None,
    store: Store | None = None,
) -> list[HealthResult]:
    """`check` for callers already inside an event loop."""
    import asyncio

    instances = list(instances)
    if not instances:
        return []
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    cap = probe_slots(concurrency, len(instances))
    semaphore = asyncio.Semaphore(cap)
    secrets = keys_of(instances) if keys is None else tuple(keys)
    saver = Saver(store, asyncio.get_running_loop().call_later) if store is not None else None

    async def one(client: ProbeClient, instance: Instance) -> HealthResult:
        async with semaphore:
            result = await probe(client, instance, timeout)
        return _deliver(result, secrets, saver, on_result)

    try:
        async with probe_client(cap) as client:
            return list(await asyncio.gather(*(one(client, i) for i in instances)))
    finally:
        if saver is not None:
            saver.flush()


def _deliver(result: HealthResult, secrets: Sequence[str], saver: Saver | None,
             on_result: OnResult | None) -> HealthResult:
    """A check's result as it ends: the keys scrubbed out, then saved (in a batch) and told."""
    result = scrubbed(result, secrets)
    if saver is not None:
        saver.add(result)
    if on_result is not None:
        on_result(result)
    return result


def probe_client(at_once: int) -> ProbeClient:
    """The one client a check's probes share (`at_once` probes in flight): no proxies, no
    redirects, connections kept alive per origin (see core/health/probe_http); the per-probe deadline in
    `probe` bounds every request."""
    from ollamactl.core.health.probe_http import ProbeClient

    return ProbeClient(idle_cap=at_once * REQUESTS_PER_PROBE, headers=client_headers())


class Saver:
    """Saves probe results to the store as they arrive, in batches: the first result at once, then
    what arrived since at most every SAVE_EVERY_S (one state write per batch, not per instance),
    and the rest on `flush`. With `later` (an event loop's call_later) it schedules its own next
    save; without, its owner calls `flush` when `due_in` says. Runs on the prober's one thread."""

    def __init__(self, store: Store, later: Callable[[float, Callable[[], None]], Any] | None = None):
        self.store = store
        self.later = later
        self.pending: list[HealthResult] = []
        self.saved_at = 0.0
        self.timer: Any = None

    def due_in(self) -> float | None:
        """Seconds until what is pending should be saved (None: nothing is)."""
        return self.saved_at + SAVE_EVERY_S - time.monotonic() if self.pending else None

    def add(self, result: HealthResult) -> None:
        self.pending.append(result)
        wait = self.saved_at + SAVE_EVERY_S - time.monotonic()  # due_in, now that something is pending
        if wait <= 0:
            self.flush()
        elif self.timer is None and self.later is not None:
            self.timer = self.later(wait, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.pending = self.pending, []
        self.saved_at = time.monotonic()
        save(self.store, batch)


async def probe(client: ProbeClient, instance: Instance, timeout: float) -> HealthResult:
    """One instance's three requests under one deadline; never raises for a network or server fault.

    `latency_ms` is the server's answer time: from sending `/api/version` to its response headers
    on an open connection (connecting is not counted), so it tells servers apart, not clients.
    """
    import asyncio

    from ollamactl.core.health.probe_wire import AnswerTimer

    try:
        headers = headers_for(instance)  # the same key rules as run/embed: trimmed, or refused in words
    except OllamaError as refused:
        return _refused(instance, refused)
    base = instance.url.rstrip("/")
    timer = AnswerTimer()

    async def get_json(path: str, parse: Callable[[Any], Any], optional: bool = False,
                       timer: AnswerTimer | None = None) -> Any:
        return _json(await client.get(base + path, headers, BODY_LIMIT, ERROR_BODY_LIMIT, timer), parse, optional)

    tasks = [asyncio.ensure_future(get_json(*ask, timer=timer if n == 0 else None)) for n, ask in enumerate(_ASKS)]
    for task in tasks:  # whatever happens below, no task's outcome is left unretrieved (no asyncio noise)
        task.add_done_callback(retrieve)
    error: str | None = None
    try:
        failed = await _first_failure(tasks, timeout)
        if failed is not None:
            error = _words(failed.exception())
        elif not all(task.done() for task in tasks):
            error = f"timed out after {seconds(timeout)} s"
    finally:
        for task in tasks:
            task.cancel()  # on success a no-op; on a timeout, an error or Ctrl-C it ends the others
    return _result(instance, timer, error, None if error is not None else [task.result() for task in tasks])


def probe_now(client: Client, instance: Instance, timeout: float) -> HealthResult:
    """`probe` on threads (core/health/probe_threads): the three requests at once, each on its own, all
    under one deadline; the same words, from the same rules (see `_first_failure`)."""
    from ollamactl.core.health.probe_threads import Asked
    from ollamactl.core.health.probe_wire import AnswerTimer

    try:
        headers = headers_for(instance)
    except OllamaError as refused:
        return _refused(instance, refused)
    base = instance.url.rstrip("/")
    timer = AnswerTimer()
    deadline = client.clock() + timeout

    def get_json(path: str, parse: Callable[[Any], Any], optional: bool = False,
                 timer: AnswerTimer | None = None) -> Callable[[], Any]:
        return lambda: _json(client.get(base + path, headers, BODY_LIMIT, ERROR_BODY_LIMIT, deadline, timer),
                             parse, optional)

    asks = [Asked(get_json(*ask, timer=timer if n == 0 else None), client.clock) for n, ask in enumerate(_ASKS)]
    for ask in asks:  # in order, until one fails or the deadline: a failure waits only for those before it
        if not ask.wait(deadline) or ask.failure is not None:
            break
    ended = [ask.finished.is_set() for ask in asks]  # once: a late answer does not change the verdict
    failed = next((ask.failure for ask, done in zip(asks, ended, strict=True) if done and ask.failure), None)
    error = _words(failed) if failed is not None else None if all(ended) else f"timed out after {seconds(timeout)} s"
    return _result(instance, timer, error, None if error is not None else [ask.value for ask in asks])


def _refused(instance: Instance, refused: OllamaError) -> HealthResult:
    return HealthResult(id=instance.id, url=instance.url, healthy=False, error=refused.reason, checked_at=time.time())


def _words(failure: BaseException | None) -> str:
    from ollamactl.core.health.probe_wire import ProbeError

    if isinstance(failure, ProbeError):
        return failure.words
    return f"probe failed: {short(str(failure)) or type(failure).__name__}"


def _result(instance: Instance, timer: AnswerTimer, error: str | None, answers: list[Any] | None) -> HealthResult:
    """The HealthResult of a probe that failed with `error`, or got `answers` (version, models, loaded)."""
    if error is not None or answers is None:
        return HealthResult(id=instance.id, url=instance.url, healthy=False, error=error,
                            latency_ms=timer.milliseconds(), checked_at=time.time())
    version, models, loaded = answers
    models = models or []
    note = None
    if len(models) > MAX_MODELS:
        note = (f"{instance.id} lists {len(models)} models; only the first {MAX_MODELS} are kept"
                " (more than any Ollama server holds: check that instance)")
        models = models[:MAX_MODELS]
    return HealthResult(id=instance.id, url=instance.url, healthy=True, latency_ms=timer.milliseconds(),
                        version=version, models=models, loaded=None if loaded is None else loaded[:MAX_MODELS],
                        checked_at=time.time(), note=note)


def loaded_models(instances: Sequence[Instance], timeout: float,
                  concurrency: int = DEFAULT_CONCURRENCY) -> list[Loaded]:
    """`GET /api/ps` of every instance at once over the probes' client (on threads, or for more than
    THREADS_UP_TO instances on an event loop, as `check`), each within `timeout` s: per instance,
    in order, (the loaded-model objects as the server sent them, or None when it has no /api/ps;
    None, or the error in words). Never raises for a network or server fault."""
    from ollamactl.core.health import probe_threads

    if len(instances) > THREADS_UP_TO:
        import asyncio

        return asyncio.run(_loaded_models_async(instances, timeout, concurrency))
    client = probe_threads.Client(client_headers())

    def one(instance: Instance) -> Loaded:
        try:
            headers = headers_for(instance)
        except OllamaError as refused:
            return None, refused.reason
        deadline = client.clock() + timeout
        ask = probe_threads.Asked(lambda: _json(client.get(instance.url.rstrip("/") + "/api/ps", headers, BODY_LIMIT,
                                                           ERROR_BODY_LIMIT, deadline), _loaded_objects, True),
                                  client.clock)
        if not ask.wait(deadline) or ask.failure is not None:
            return _unanswered(instance, ask.failure, timeout)
        return ask.value, None

    answers: list[Loaded] = [(None, None)] * len(instances)
    for index, answer in probe_threads.each(one, instances, probe_slots(concurrency, len(instances))):
        answers[index] = answer
    return answers


async def _loaded_models_async(instances: Sequence[Instance], timeout: float, concurrency: int) -> list[Loaded]:
    import asyncio

    from ollamactl.core.health.probe_wire import ProbeError

    cap = probe_slots(concurrency, len(instances))
    semaphore = asyncio.Semaphore(cap)

    async def one(client: ProbeClient, instance: Instance) -> Loaded:
        try:
            headers = headers_for(instance)
        except OllamaError as refused:
            return None, refused.reason
        async with semaphore:
            try:
                answer = await asyncio.wait_for(client.get(instance.url.rstrip("/") + "/api/ps", headers, BODY_LIMIT,
                                                           ERROR_BODY_LIMIT), timeout)
                return _json(answer, _loaded_objects, True), None
            except ProbeError as failed:
                return _unanswered(instance, failed, timeout)
            except asyncio.TimeoutError:
                return _unanswered(instance, None, timeout)

    async with probe_client(cap) as client:
        return list(await asyncio.gather(*(one(client, i) for i in instances)))


def _unanswered(instance: Instance, failure: BaseException | None, timeout: float) -> Loaded:
    """An /api/ps that failed (`failure`), or got no answer within `timeout` (None)."""
    if failure is None:
        return None, f"timed out after {seconds(timeout)} s"
    return None, redact(_words(failure), keys_of([instance]))  # a server may quote the key it got


def _loaded_objects(data: Any) -> list[dict[str, Any]]:
    """/api/ps's model objects, whole (`ps` shows their sizes and timers), each with a usable name."""
    models = data.get("models")
    if models is None:
        return []
    if not isinstance(models, list) or not all(
            isinstance(m, dict) and isinstance(m.get("name"), str) and 0 < len(m["name"]) <= MAX_NAME for m in models):
        raise ValueError("not a list of named models")
    return models


async def _first_failure(tasks: list[Any], timeout: float) -> Any:
    """Wait (at most `timeout` s) until all `tasks` succeed or one fails, and return the failed
    task that comes first in `tasks` (None if none failed). A failure waits only for the tasks
    before it, so the words shown for an instance do not depend on which answer came back first."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    waiting = list(tasks)
    while waiting and (left := deadline - loop.time()) > 0:
        await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_EXCEPTION)
        failed = next((task for task in tasks if task.done() and not task.cancelled() and task.exception()), None)
        waiting = [task for task in (tasks if failed is None else tasks[:tasks.index(failed)]) if not task.done()]
    return next((task for task in tasks if task.done() and not task.cancelled() and task.exception()), None)


def retrieve(task: Any) -> None:
    """A done-callback that collects a task's outcome, so asyncio never logs it as unretrieved."""
    if not task.cancelled():
        task.exception()


def scrubbed(result: HealthResult, keys: Sequence[str]) -> HealthResult:
    """`result` with every key in `keys` that stands whole in a server's words (error, version)
    replaced by `***`; a model whose name or digest holds one is left out, never rewritten."""
    if not keys:
        return result
    kept = [m for m in result.models if not holds(m["name"], keys) and not holds(m.get("digest") or "", keys)]
    note = result.note
    if len(kept) < len(result.models):
        left = f"{result.id}: {len(result.models) - len(kept)} model(s) left out: a name holds a configured API key"
        note = "; ".join(filter(None, (result.note, left)))
    return result._replace(
        error=None if result.error is None else redact(result.error, keys),
        version=None if result.version is None else redact(result.version, keys),
        models=kept, note=note,
        loaded=None if result.loaded is None else [n for n in result.loaded if not holds(n, keys)])


def scrubbed_entries(health: dict[str, Any], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A health cache section `scrubbed` with `keys`; of an entry not of the cache's shape only
    its url and verdict are kept (its words and lists are not read)."""
    from ollamactl.core.state.schema import health_entry_ok

    return {instance_id: scrubbed(HealthResult.from_cache(instance_id, entry), keys).to_cache()
            if health_entry_ok(entry) else {"url": entry.get("url"), "healthy": entry.get("healthy")}
            for instance_id, entry in health.items() if isinstance(entry, dict)}


def _json(answer: Answer, parse: Callable[[Any], Any], optional: bool = False) -> Any:
    """`parse` of an answer's JSON; ProbeError in words when it is not a 200 of JSON `parse` accepts
    (an `optional` route's 404 is None: /api/ps is missing before 0.1.38, "unknown", not unhealthy)."""
    from ollamactl.core.health.probe_wire import ProbeError

    status = answer.status
    if optional and status == 404:
        return None
    if status == 200:
        if not answer.whole:
            raise ProbeError(too_large(BODY_LIMIT))
        try:
            data = server_json.loads(answer.body)
        except ValueError as error:
            raise ProbeError(server_json.not_ollama(error, None)) from None
        try:
            return parse(data)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise ProbeError(NOT_OLLAMA) from None
    raise ProbeError(_http_words(answer))


def _http_words(answer: Answer) -> str:
    status = answer.status
    message = error_message(answer.body)
    if status == 401:
        return "HTTP 401: unauthorized (check the API key)"
    if status == 404 and message is None:
        return NOT_OLLAMA  # plain "404 page not found": the route does not exist, not Ollama
    if 300 <= status < 400:
        where = answer.headers.get("location")
        return f"HTTP {status}: redirected" + (f" to {short(where)} (not followed)" if where else " (not followed)")
    if message is None:
        message = answer.reason.lower() if answer.reason else "no message"
        if status == 403:
            message += " (a loopback-bound Ollama rejects non-local Host headers)"
    return f"HTTP {status}: {message}"


def _parse_version(data: Any) -> str:
    version = data["version"]
    if not isinstance(version, str):
        raise ValueError("version is not text")
    return short(version, MAX_VERSION)


def _model_list(data: Any) -> list[dict[str, Any]]:
    models = data["models"]
    if models is None:  # some builds say null for none
        return []
    if not isinstance(models, list):
        raise ValueError("models is not a list")
    out = []
    for model in models:
        name = model.get("name") or model.get("model")
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            raise ValueError("a model without a usable name")
        digest, size = model.get("digest"), model.get("size")
        out.append({
            "name": name,
            "digest": digest if isinstance(digest, str) and len(digest) <= MAX_NAME else None,
            "size": size if _number(size) else None,
        })
    return out


def _parse_ps(data: Any) -> list[str]:
    return [m["name"] for m in _model_list(data)]


# a probe's requests (path, parse, whether a 404 means "unknown"), in the order their failures count
_ASKS: tuple[tuple[str, Callable[[Any], Any], bool], ...] = (
    ("/api/version", _parse_version, False), ("/api/tags", _model_list, False), ("/api/ps", _parse_ps, True))


def probe_slots(concurrency: int, count: int) -> int:
    """How many of `count` instances are probed at once: `concurrency`, at most `count`, and lowered
    if the open-file limit cannot hold that many probes' sockets (after trying to raise it)."""
    cap = max(1, min(int(concurrency), count))
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return cap
    needed = cap * REQUESTS_PER_PROBE + 64
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < needed:
            target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    except (OSError, ValueError):
        return cap
    if soft == resource.RLIM_INFINITY:
        return cap
    return max(1, min(cap, (soft - 64) // REQUESTS_PER_PROBE))
