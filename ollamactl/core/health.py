"""Health probes: is each instance up, which models does it hold, which are loaded. Never prints.

A probe of one instance is `GET /api/version`, `GET /api/tags` and `GET /api/ps`, sent at once
and bounded by ONE overall deadline (httpx's read timeout only measures the silence between
bytes, so a server dripping a byte a second would otherwise hold a probe for ever). All instances
are probed concurrently, up to a cap, over one shared `httpx.AsyncClient`; the whole check costs
about as much as the slowest instance, never the sum.

Errors are words a person can act on: `connection refused`, `timed out after 2.0 s`,
`HTTP 401: unauthorized (check the API key)`, `not an Ollama server`, `HTTP 500: <message>`,
`cannot resolve host <h>`, ...

Servers are untrusted: each answer is read up to BODY_LIMIT (beyond it: `answer too large`),
at most MAX_MODELS models are kept (with a `note` to warn about), and every configured key is
scrubbed from what a server said (`scrubbed`) before a result is cached or shown.

Results are kept in the state's `"health"` section (`save`); `health_cache` decides which may be
used. httpx and asyncio load only when probing.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ollamactl.core.http import (
    ERROR_BODY_LIMIT,
    MB,
    NOT_OLLAMA,
    OllamaError,
    describe,
    error_message,
    headers_for,
    keys_of,
    read_capped,
    redact,
    seconds,
    short,
    too_large,
)
from ollamactl.core.settings import DEFAULTS
from ollamactl.core.state import MAX_MODELS

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from ollamactl.core.registry import Instance
    from ollamactl.core.store import Store

DEFAULT_CONCURRENCY = DEFAULTS["concurrency"]
REQUESTS_PER_PROBE = 3  # version, tags, ps: at most three connections per instance at once
BODY_LIMIT = 8 * MB  # one probe answer (/api/tags of a thousand models is well under 1 MB)
MAX_NAME = 512  # characters of a model name; longer ones are not Ollama's
MAX_VERSION = 100  # characters of a version string
SAVE_EVERY_S = 0.2  # probe results are saved in batches at most this often while a check runs

OnResult = Callable[["HealthResult"], None]


@dataclass
class HealthResult:
    id: str
    url: str
    healthy: bool
    error: str | None = None
    latency_ms: float | None = None
    version: str | None = None
    models: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "digest", "size"}]
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
        from ollamactl.core.state import health_entry_ok

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
    """Probe `instances` concurrently; results in the same order. `on_result` sees each as it ends.

    Every key in `keys` (default: those of `instances`) is scrubbed from what the servers said.
    With a `store`, results are saved as they arrive (see `Saver`), so one hung instance does not
    hold back the others' news.
    """
    import asyncio

    return asyncio.run(check_async(instances, timeout, concurrency, on_result, keys, store))


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
    cap = _usable_concurrency(max(1, min(int(concurrency), len(instances))))
    semaphore = asyncio.Semaphore(cap)
    secrets = keys_of(instances) if keys is None else tuple(keys)
    saver = Saver(store) if store is not None else None

    async def one(client: httpx.AsyncClient, instance: Instance) -> HealthResult:
        async with semaphore:
            result = scrubbed(await probe(client, instance, timeout), secrets)
        if saver is not None:
            saver.add(result)
        if on_result is not None:
            on_result(result)
        return result

    try:
        async with probe_client(cap, timeout) as client:
            return list(await asyncio.gather(*(one(client, i) for i in instances)))
    finally:
        if saver is not None:
            saver.flush()


def probe_client(at_once: int, timeout: float) -> httpx.AsyncClient:
    """The one client a check's probes share (`at_once` probes in flight): no proxies, no
    redirects, a pool per origin."""
    import httpx

    _spare_failed_imports()
    connections = at_once * REQUESTS_PER_PROBE
    return httpx.AsyncClient(
        trust_env=False,  # loopback instances must never go through HTTP_PROXY
        follow_redirects=False,  # a key is sent only to its own instance
        timeout=httpx.Timeout(timeout),  # the per-probe deadline in `probe` is what bounds a probe
        transport=_per_origin_transport(connections),
        headers={"Accept": "application/json", "User-Agent": _user_agent()},
    )


class Saver:
    """Saves probe results to the store as they arrive, in batches: the first result at once, then
    what arrived since at most every SAVE_EVERY_S (one state write per batch, not per instance),
    and the rest on `flush`. Runs on the probing event loop."""

    def __init__(self, store: Store):
        self.store = store
        self.pending: list[HealthResult] = []
        self.saved_at = 0.0
        self.timer: Any = None

    def add(self, result: HealthResult) -> None:
        import asyncio

        self.pending.append(result)
        wait = self.saved_at + SAVE_EVERY_S - time.monotonic()
        if wait <= 0:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.pending = self.pending, []
        self.saved_at = time.monotonic()
        save(self.store, batch)


async def probe(client: httpx.AsyncClient, instance: Instance, timeout: float) -> HealthResult:
    """One instance's three requests under one deadline; never raises for a network or server fault.

    `latency_ms` is the server's answer time: from sending `/api/version` to its response headers
    on an open connection (connecting is not counted), so it tells servers apart, not clients.
    """
    import asyncio

    try:
        headers = headers_for(instance)  # the same key rules as run/embed: trimmed, or refused in words
    except OllamaError as refused:
        return HealthResult(id=instance.id, url=instance.url, healthy=False, error=refused.reason,
                            checked_at=time.time())
    base = instance.url.rstrip("/")
    timer = _AnswerTimer()
    tasks = [
        asyncio.ensure_future(_get_json(client, base, "/api/version", headers, _parse_version, timer=timer)),
        asyncio.ensure_future(_get_json(client, base, "/api/tags", headers, _model_list)),
        asyncio.ensure_future(_get_json(client, base, "/api/ps", headers, _parse_ps, optional=True)),
    ]
    for task in tasks:  # whatever happens below, no task's outcome is left unretrieved (no asyncio noise)
        task.add_done_callback(retrieve)
    error: str | None = None
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION)
        failed = next((task for task in tasks
                       if task in done and not task.cancelled() and task.exception() is not None), None)
        if failed is not None:
            exc = failed.exception()
            error = exc.words if isinstance(exc, ProbeError) else describe(exc, instance.url, timeout)
        elif len(done) < len(tasks):
            error = f"timed out after {seconds(timeout)} s"
    finally:
        for task in tasks:
            task.cancel()  # on success a no-op; on a timeout, an error or Ctrl-C it ends the others
    if error is not None:
        return HealthResult(id=instance.id, url=instance.url, healthy=False, error=error,
                            latency_ms=timer.milliseconds(), checked_at=time.time())
    version, models, loaded = (task.result() for task in tasks)
    models = models or []
    note = None
    if len(models) > MAX_MODELS:
        note = (f"{instance.id} lists {len(models)} models; only the first {MAX_MODELS} are kept"
                " (more than any Ollama server holds: check that instance)")
        models = models[:MAX_MODELS]
    return HealthResult(id=instance.id, url=instance.url, healthy=True, latency_ms=timer.milliseconds(),
                        version=version, models=models, loaded=None if loaded is None else loaded[:MAX_MODELS],
                        checked_at=time.time(), note=note)


def retrieve(task: Any) -> None:
    """A done-callback that collects a task's outcome, so asyncio never logs it as unretrieved."""
    if not task.cancelled():
        task.exception()


class _AnswerTimer:
    """An httpcore trace hook timing one request from its first header byte sent to its response
    headers received: the server's time, without connecting or the client's own start-up."""

    def __init__(self) -> None:
        self.sent: float | None = None
        self.answered: float | None = None

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_headers.started"):
            self.sent = time.perf_counter()
        elif event.endswith("receive_response_headers.complete"):
            self.answered = time.perf_counter()

    def milliseconds(self) -> float | None:
        if self.sent is None or self.answered is None:
            return None
        return round((self.answered - self.sent) * 1000.0, 2)


def scrubbed(result: HealthResult, keys: Sequence[str]) -> HealthResult:
    """`result` with every key in `keys` replaced by `***` in all the text a server sent."""
    if not keys:
        return result
    result.error = None if result.error is None else redact(result.error, keys)
    result.version = None if result.version is None else redact(result.version, keys)
    result.models = [{**m, "name": redact(m["name"], keys),
                      "digest": None if m.get("digest") is None else redact(m["digest"], keys)}
                     for m in result.models]
    result.loaded = None if result.loaded is None else [redact(n, keys) for n in result.loaded]
    return result


def _per_origin_transport(connections: int) -> httpx.AsyncBaseTransport:
    """A transport that keeps one small connection pool per origin (scheme, host, port).

    httpcore's pool scans every connection it holds for every request it assigns, so a single
    pool holding the ~3 x N connections of an N-instance check costs O(N^2): about 9 s of CPU for
    200 instances. One pool per origin keeps each scan to that origin's few connections. The pools
    share one TLS context, made on the first https origin (verification as httpx does it).
    """
    import ssl

    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    class PerOrigin(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}
            self.tls: ssl.SSLContext | None = None
            # http pools never do TLS; this context verifies everything and trusts nothing.
            self.plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            url = request.url
            key = (url.raw_scheme, url.raw_host, url.port)
            pool = self.pools.get(key)
            if pool is None:
                if url.scheme == "https":
                    if self.tls is None:
                        self.tls = httpx.create_ssl_context()
                    context = self.tls
                else:
                    context = self.plain
                pool = self.pools[key] = httpx.AsyncHTTPTransport(verify=context, limits=limits, trust_env=False)
            return await pool.handle_async_request(request)

        async def aclose(self) -> None:
            for pool in self.pools.values():
                await pool.aclose()

    return PerOrigin()


class ProbeError(Exception):
    """A probe failed; `words` is the message shown to people."""

    def __init__(self, words: str):
        super().__init__(words)
        self.words = words




async def _get_json(client: httpx.AsyncClient, base: str, path: str, headers: dict[str, str],
                    parse: Callable[[Any], Any], optional: bool = False, timer: _AnswerTimer | None = None) -> Any:
    extensions = {"trace": timer} if timer is not None else None
    async with client.stream("GET", base + path, headers=headers, extensions=extensions) as response:
        status = response.status_code
        if optional and status == 404:
            return None  # /api/ps is missing before 0.1.38: "unknown", not unhealthy
        content, whole = await read_capped(response, BODY_LIMIT if status == 200 else ERROR_BODY_LIMIT)
    if status == 200:
        if not whole:
            raise ProbeError(too_large(BODY_LIMIT))
        try:
            data = json.loads(content)
        except (ValueError, RecursionError):
            raise ProbeError(NOT_OLLAMA) from None
        try:
            return parse(data)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise ProbeError(NOT_OLLAMA) from None
    raise ProbeError(_http_words(response, content))


def _http_words(response: httpx.Response, content: bytes) -> str:
    status = response.status_code
    message = error_message(content)
    if status == 401:
        return "HTTP 401: unauthorized (check the API key)"
    if status == 404 and message is None:
        return NOT_OLLAMA  # plain "404 page not found": the route does not exist, not Ollama
    if 300 <= status < 400:
        where = response.headers.get("location")
        return f"HTTP {status}: redirected" + (f" to {short(where)} (not followed)" if where else " (not followed)")
    if message is None:
        message = response.reason_phrase.lower() if response.reason_phrase else "no message"
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


def _spare_failed_imports() -> None:
    """Mark sniffio as absent when it is not installed, so `import sniffio` fails at once.

    httpcore runs `import sniffio` on every request and lock; without the package (anyio 4.x no
    longer pulls it in) each attempt searches sys.path again, ~30 us a time, 0.1-0.3 s over a
    200-instance check. A None entry in sys.modules makes the import fail immediately, exactly as
    it would anyway.
    """
    import importlib.util
    import sys

    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def _user_agent() -> str:
    from ollamactl import __version__

    return f"ollamactl/{__version__}"


def _usable_concurrency(cap: int) -> int:
    """`cap`, lowered if the open-file limit cannot hold cap x 3 sockets (after trying to raise it)."""
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
