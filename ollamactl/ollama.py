"""The Ollama client calls: streamed generate/chat with failover, and fleet-wide embeddings.

The rules (design.md "Proxying rules"; ollama-api.md is the wire contract):

- One httpx client per command (a plain `Client` for run's single stream, which measured faster
  than the async one; an `AsyncClient` for embed's fan-out) with `trust_env=False` (loopback instances never go through
  HTTP_PROXY) and `follow_redirects=False`; `Authorization: Bearer` is set per request, only with
  the key of the instance being called. Every error text has that key masked.
- Timeouts: connecting is short (`connect`); until the response headers *and* the first NDJSON line
  have arrived there is one overall deadline (`first_byte`: a cold model load can take minutes);
  after that each new line must come within `read`. httpx's read timeout only measures silence (a
  server dripping a byte a second never trips it), so a watchdog enforces both deadlines; the hot
  loop only moves a number.
- NDJSON is split on b"\\n" here (Ollama leaves U+2028 unescaped, which `iter_lines` splits on);
  every line is checked for "error", and a stream without a `done: true` line is truncated: failed.
- Errors map to classes whose `retryable` says whether another instance may be tried. Retryable:
  the server could not serve this now (connect error, timeout, 5xx, 503 busy, 404 model not found,
  a dropped connection, an error line or truncation before any output). Not retryable: the request
  or the configuration is wrong (400, 401, other 4xx, a plain-text 404 = route missing, a redirect,
  an answer that is not Ollama's). Once output has reached the user nothing is retried.

Nothing here prints: text goes to the callbacks and writers the caller passes.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ollamactl.errors import OllamactlError

if TYPE_CHECKING:  # pragma: no cover
    import asyncio

    import httpx

    from ollamactl.registry import Instance, Registry

DEFAULT_READ_TIMEOUT = 120.0  # seconds allowed between two NDJSON lines once a stream has begun
ERROR_BODY_LIMIT = 64 * 1024
_NEVER = float("inf")
_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")  # what a header value may hold (after stripping)
HEDGE_MIN_S = 1.0  # an embedding batch running this long (and 4x the usual) may be duplicated elsewhere

Log = Callable[[str], None]
Emit = Callable[[bytes, dict], bool]  # (raw line, parsed object) -> True once it showed something
Flush = Callable[[], None]


@dataclass(frozen=True)
class Timeouts:
    connect: float = 3.0
    first_byte: float = 600.0
    read: float = DEFAULT_READ_TIMEOUT

    @classmethod
    def from_settings(cls, reg: Registry, connect: float | None = None, first_byte: float | None = None,
                      read: float | None = None) -> Timeouts:
        return cls(
            connect=connect if connect is not None else float(reg.setting("connect_timeout")),
            first_byte=first_byte if first_byte is not None else float(reg.setting("first_byte_timeout")),
            read=read if read is not None else DEFAULT_READ_TIMEOUT,
        )


def label(instance: Instance) -> str:
    return f"{instance.id} ({instance.url})"


def seconds(value: float) -> str:
    text = f"{value:.1f}"
    return text if float(text) == value else f"{value:g}"


# ---------------------------------------------------------------------------------------------
# Errors


class OllamaError(OllamactlError):
    """A failed call to one instance; `reason` is the words without the instance's name."""

    retryable = False

    def __init__(self, reason: str, instance: Instance | None = None, status: int | None = None,
                 hint: str | None = None):
        key = instance.resolve_api_key() if instance is not None else None
        if key:
            for form in {key, key.strip()} - {""}:
                reason = reason.replace(form, "***")
        self.reason = reason
        self.instance = instance
        self.status = status
        super().__init__(f"{label(instance)}: {reason}" if instance is not None else reason, hint)


class ConnectFailed(OllamaError):
    """No connection, or it broke before an answer arrived."""

    retryable = True


class Timeout(OllamaError):
    retryable = True


class ServerError(OllamaError):
    """HTTP 5xx, an error line or a truncated stream before any output."""

    retryable = True


class ServerBusy(ServerError):
    """HTTP 503: the server's queue is full."""


class ModelNotFound(OllamaError):
    """HTTP 404 with a JSON "... not found" error: this instance lacks the model."""

    retryable = True


class Unauthorized(OllamaError):
    pass


class BadRequest(OllamaError):
    """HTTP 400 or another 4xx: the request is wrong; another instance would say the same."""


class RouteMissing(OllamaError):
    """A plain-text 404: the path does not exist on that server (old Ollama, or not Ollama)."""


class Redirected(OllamaError):
    pass


class NotOllama(OllamaError):
    """The answer is not what Ollama sends."""


class StreamBroken(OllamaError):
    """A stream failed after output had reached the user: never retried."""


class AllFailed(OllamaError):
    """Every attempt failed; `attempts` holds (instance, error) in order."""

    def __init__(self, attempts: list[tuple[Instance, OllamaError]], what: str = "every attempt failed"):
        self.attempts = attempts
        listing = "; ".join(str(error) for _, error in attempts)
        super().__init__(f"{what}: {listing}")


def status_error(status: int, content: bytes, location: str | None, reason_phrase: str,
                 instance: Instance) -> OllamaError:
    """The error class and words for a non-200 answer (`content`: the body, maybe cut short)."""
    message = _error_message(content)
    if 300 <= status < 400:
        where = f" to {location}" if location else ""
        return Redirected(f"HTTP {status}: redirected{where} (redirects are not followed)", instance, status,
                          "register the final URL instead")
    if status == 401:
        return Unauthorized("HTTP 401: unauthorized (check the API key)", instance, status)
    if status == 404:
        if message is None:
            return RouteMissing("HTTP 404: no such API path (not an Ollama server, or too old?)", instance, status)
        if "not found" in message.lower():
            return ModelNotFound(f"HTTP 404: {message}", instance, status)
        return BadRequest(f"HTTP 404: {message}", instance, status)
    words = message or (reason_phrase.lower() if reason_phrase else "no message")
    if status == 503:
        return ServerBusy(f"HTTP 503: {words}", instance, status)
    if status >= 500:
        return ServerError(f"HTTP {status}: {words}", instance, status)
    return BadRequest(f"HTTP {status}: {words}", instance, status)


def _error_message(content: bytes) -> str | None:
    try:
        data = json.loads(content)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"].strip():
        return _short(data["error"])
    return None


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def network_error(exc: BaseException, instance: Instance, timeouts: Timeouts) -> OllamaError:
    """An httpx exception in words, as the right class."""
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectFailed(f"connect timed out after {seconds(timeouts.connect)} s", instance)
    if isinstance(exc, httpx.TimeoutException):
        return Timeout("timed out", instance)
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc).lower()
        if "disconnect" in text or "peer closed" in text or "without sending" in text:
            return ConnectFailed("the server closed the connection without a complete answer", instance)
        return NotOllama("not an Ollama server (the answer is not valid HTTP)", instance)
    if isinstance(exc, httpx.DecodingError):
        return NotOllama("not an Ollama server (the answer cannot be decoded)", instance)
    if isinstance(exc, (httpx.TransportError, OSError)):
        from ollamactl.health import describe

        return ConnectFailed(describe(exc, instance.url, timeouts.connect), instance)
    return OllamaError(f"request failed: {_short(str(exc)) or type(exc).__name__}", instance)


# ---------------------------------------------------------------------------------------------
# Plumbing


def headers_for(instance: Instance) -> dict[str, str]:
    """Request headers for `instance`: its own key, and only its own.

    Surrounding whitespace (a key file's newline) is dropped. A key an HTTP header cannot carry is
    refused here, in words that name where it came from: httpx's own error would quote the key.
    """
    headers = {"Content-Type": "application/json"}
    key = (instance.resolve_api_key() or "").strip()
    if key:
        if not _HEADER_SAFE.fullmatch(key):
            source = f"${instance.api_key_env}" if instance.api_key_env else "the registry"
            raise BadRequest(f"the API key from {source} cannot be sent: it holds a line break, a control or a"
                             " non-ASCII character", instance, hint="set the key again without it")
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _client_options(timeouts: Timeouts, instances: Sequence[Instance], connections: int) -> dict[str, Any]:
    import httpx

    from ollamactl import __version__

    return dict(
        trust_env=False,  # loopback instances must never go through HTTP_PROXY
        follow_redirects=False,  # a key is sent only to its own instance
        # Building a TLS context costs ~15 ms of start-up: only when some instance speaks https.
        verify=any(i.url.startswith("https:") for i in instances),
        # Only the connect timeout is httpx's; the deadlines after it are enforced here (see top).
        timeout=httpx.Timeout(connect=timeouts.connect, read=None, write=None, pool=None),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        headers={"User-Agent": f"ollamactl/{__version__}", "Accept-Encoding": "identity"},
    )


def make_client(timeouts: Timeouts, instances: Sequence[Instance] = (), connections: int = 4) -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(**_client_options(timeouts, instances, connections))


class _Watchdog:
    """Aborts a blocking exchange once `deadline` (time.monotonic) has passed, from its own thread.

    The thread sleeps until the deadline, re-reads it (the hot loop moves it forward by storing a
    number, or pauses it while it writes by storing infinity), and when it has really passed shuts
    the connection's socket down: the blocked read returns at once and the caller sees `fired`.
    Socket shutdown is safe from another thread.
    """

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.fired = False
        self._socket: Any = None
        self._lock = threading.Lock()
        self._stopped = False
        self._signal = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ollamactl-deadline", daemon=True)
        self._thread.start()

    def attach(self, sock: Any) -> None:
        with self._lock:
            self._socket = sock
            if self.fired:
                self._shutdown()

    def trace(self, event: str, info: dict) -> None:
        """httpcore's trace hook: learn the socket as soon as the connection exists."""
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            if stream is not None:
                self.attach(stream.get_extra_info("socket"))

    def move(self, deadline: float) -> None:
        """Set a deadline that may be earlier than the current one (the thread re-reads it)."""
        self.deadline = deadline
        self._signal.set()

    def _watch(self) -> None:
        while not self._stopped:
            delay = self.deadline - time.monotonic()
            if delay <= 0:
                with self._lock:
                    self.fired = True
                    self._shutdown()
                return
            # Paused (deadline never: the caller is writing) -> look again soon, as it may come back.
            self._signal.wait(delay if delay != _NEVER else 0.5)
            self._signal.clear()

    def _shutdown(self) -> None:
        import socket

        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        self._stopped = True
        self._signal.set()


# ---------------------------------------------------------------------------------------------
# Generate and chat


@dataclass
class Completion:
    """A finished generation: who served it, its last line, and what came before."""

    instance: Instance
    final: dict
    failed: list[tuple[Instance, OllamaError]]
    first_line_s: float  # from sending the request to its first NDJSON line
    first_output_s: float | None  # ... to the first thing shown to the user


class _Attempt:
    __slots__ = ("started", "first_line_at", "first_output_at", "dog")

    def __init__(self, dog: _Watchdog) -> None:
        self.started = False
        self.first_line_at: float | None = None
        self.first_output_at: float | None = None
        self.dog = dog


def complete(instances: Sequence[Instance], path: str, body: dict, emit: Emit, *, timeouts: Timeouts,
             tries: int = 3, log: Log | None = None, feedback: bool = True, flush: Flush | None = None) -> Completion:
    """POST `body` to `path` on the first instance that serves it, failing over before any output.

    `emit(raw_line, obj)` is called for every NDJSON line that is not an error and returns True once
    it has shown something to the user; from then on a failure raises StreamBroken (never retried).
    `flush()` is called whenever the next read could wait for the network, so everything emitted is
    out before any wait, while a burst of lines already received costs one flush, not one per line.
    `feedback` feeds the circuit breaker (and forgets models an instance answered 404 for).
    Synchronous on purpose: this is the hot path (a blocking read per chunk is the cheapest loop).
    """
    import httpx

    order = list(instances)[: max(1, tries)]
    payload = json.dumps(body).encode()
    failed: list[tuple[Instance, OllamaError]] = []
    model = body.get("model")
    with httpx.Client(**_client_options(timeouts, order, 2)) as client:
        for number, instance in enumerate(order, 1):
            if log:
                log(f"attempt {number}/{len(order)}: {label(instance)}")
            sent = time.monotonic()
            attempt = _Attempt(_Watchdog(sent + timeouts.first_byte))
            try:
                final = _exchange(client, instance, path, payload, emit, attempt, timeouts, flush)
            except OllamaError as error:
                if feedback:
                    _feed(instance, error, model)
                if attempt.started:
                    raise StreamBroken(f"the stream failed after output had started: {error.reason}"
                                       " (the output so far is kept; not retried)", instance) from None
                failed.append((instance, error))
                if not error.retryable:
                    raise _with_history(error, failed[:-1]) from None
                if log:
                    following = order[number] if number < len(order) else None
                    then = f"; trying {label(following)}" if following else ""
                    log(f"{label(instance)} failed: {error.reason}{then}")
                continue
            finally:
                attempt.dog.stop()
            latency_ms = ((attempt.first_line_at or sent) - sent) * 1000.0
            if feedback:
                _record(instance.id, True, latency_ms)
            return Completion(instance, final, failed, latency_ms / 1000.0,
                              None if attempt.first_output_at is None else attempt.first_output_at - sent)
    raise AllFailed(failed, f"all {len(failed)} attempt{'s' if len(failed) != 1 else ''} failed")


def _with_history(error: OllamaError, earlier: list[tuple[Instance, OllamaError]]) -> OllamaError:
    if earlier:
        before = "; ".join(str(e) for _, e in earlier)
        error.message = f"{error.message} (after: {before})"
    return error


def _feed(instance: Instance, error: OllamaError, model: str | None) -> None:
    """Breaker feedback for one failed call: the request's own faults do not count against the server."""
    if isinstance(error, ModelNotFound):
        if model:
            from ollamactl import breaker

            breaker.forget_model(instance.id, model)
        _record(instance.id, True)  # it answered correctly; it just lacks the model
    elif isinstance(error, BadRequest):
        _record(instance.id, True)
    else:
        _record(instance.id, False)


def _record(instance_id: str, ok: bool, latency_ms: float | None = None) -> None:
    from ollamactl import breaker

    try:
        breaker.record(instance_id, ok, latency_ms=latency_ms)
    except OllamactlError:
        pass  # the breaker is a cache: never fail a request over it


def _exchange(client: httpx.Client, instance: Instance, path: str, payload: bytes, emit: Emit,
              attempt: _Attempt, timeouts: Timeouts, flush: Flush | None) -> dict:
    """One attempt: send, check the status, run the line loop; network faults in words."""
    import httpx

    dog = attempt.dog
    request = client.build_request("POST", instance.url + path, content=payload, headers=headers_for(instance),
                                   extensions={"trace": dog.trace})
    try:
        response = client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise _deadline_error(attempt, instance, timeouts) if dog.fired else network_error(exc, instance, timeouts) \
            from None
    try:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            dog.attach(sock)
        if response.status_code != 200:
            content = b""
            try:
                for chunk in response.iter_raw():
                    content += chunk
                    if len(content) >= ERROR_BODY_LIMIT:
                        break
            except httpx.HTTPError:
                pass
            if dog.fired:
                raise _deadline_error(attempt, instance, timeouts)
            raise status_error(response.status_code, content, response.headers.get("location"),
                               response.reason_phrase, instance)
        try:
            return _lines(response, instance, emit, attempt, timeouts, flush, _pending_check(sock))
        except httpx.HTTPError as exc:
            if dog.fired:
                raise _deadline_error(attempt, instance, timeouts) from None
            raise network_error(exc, instance, timeouts) from None
    finally:
        response.close()


def _deadline_error(attempt: _Attempt, instance: Instance, timeouts: Timeouts) -> OllamaError:
    if attempt.first_line_at is None:
        return Timeout(f"no answer within the first-byte timeout ({seconds(timeouts.first_byte)} s)", instance)
    return Timeout(f"no new line for {seconds(timeouts.read)} s", instance)


def _pending_check(sock: Any) -> Callable[[], bool]:
    """A cheap "is more data already waiting on this socket?" (False when it cannot tell)."""
    import select

    if sock is None:
        return lambda: False
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            return lambda: bool(poller.poll(0))
        return lambda: bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return lambda: False


def _lines(response: httpx.Response, instance: Instance, emit: Emit, attempt: _Attempt, timeouts: Timeouts,
           flush: Flush | None = None, pending: Callable[[], bool] = lambda: False) -> dict:
    """The hot loop: split on b"\\n", check each line, hand it to `emit`, move the deadline, and
    flush the output before any read that could wait (see `complete`)."""
    loads = json.loads
    monotonic = time.monotonic
    read_timeout = timeouts.read
    dog = attempt.dog
    final: dict | None = None
    started = attempt.started
    buffer = b""
    encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
    for chunk in response.iter_bytes() if encoded else response.iter_raw():
        if b"\n" not in chunk:
            buffer += chunk
            continue
        if buffer:
            chunk = buffer + chunk
        *lines, buffer = chunk.split(b"\n")
        for line in lines:  # _line() inlined: this runs once per token
            try:
                obj = loads(line)
            except ValueError:
                if line.strip():
                    raise NotOllama("not an Ollama server (a line of the answer is not JSON)", instance) from None
                continue
            if type(obj) is not dict:
                raise NotOllama("not an Ollama server (a line of the answer is not a JSON object)", instance)
            if "error" in obj:
                raise ServerError(f"the server reported: {_short(obj['error'])}", instance)
            if emit(line, obj) and not started:
                started = attempt.started = True
                attempt.first_output_at = monotonic()
            if obj.get("done"):
                final = obj
        if attempt.first_line_at is None:  # from the first-byte deadline to the (shorter) one between lines
            attempt.first_line_at = monotonic()
            dog.move(attempt.first_line_at + read_timeout)
        if flush is not None and not pending():
            dog.deadline = _NEVER  # our own write may block on a slow reader: that is not the server's silence
            flush()
        dog.deadline = monotonic() + read_timeout
    if dog.fired:  # the socket was shut down under us: a clean end, not the server's
        raise _deadline_error(attempt, instance, timeouts)
    if buffer.strip():  # a last line without its newline (a stream:false body, say)
        final = _line(buffer, loads, instance, emit, attempt) or final
        if attempt.first_line_at is None:
            attempt.first_line_at = monotonic()
    if final is None:
        if attempt.first_line_at is None:
            raise ConnectFailed("the server closed the connection without an answer", instance)
        raise ServerError("the stream ended without a done line (truncated)", instance)
    return final


def _line(line: bytes, loads: Callable, instance: Instance, emit: Emit, attempt: _Attempt) -> dict | None:
    try:
        obj = loads(line)
    except ValueError:
        if not line.strip():
            return None
        raise NotOllama("not an Ollama server (a line of the answer is not JSON)", instance) from None
    if type(obj) is not dict:
        raise NotOllama("not an Ollama server (a line of the answer is not a JSON object)", instance)
    if "error" in obj:
        raise ServerError(f"the server reported: {_short(obj['error'])}", instance)
    if emit(line, obj) and not attempt.started:
        attempt.started = True
        attempt.first_output_at = time.monotonic()
    return obj if obj.get("done") else None


# ---------------------------------------------------------------------------------------------
# Embeddings


def model_digests(candidates: Sequence[Instance], health: dict[str, dict], model: str) -> dict[str, str]:
    """{instance id: digest} of `model` per the cached health entries (instances without one are left out)."""
    from ollamactl.selection import normalise_model

    wanted = normalise_model(model)
    digests = {}
    for instance in candidates:
        for entry in (health.get(instance.id) or {}).get("models") or ():
            if entry.get("name") and normalise_model(entry["name"]) == wanted and entry.get("digest"):
                digests[instance.id] = entry["digest"]
    return digests


@dataclass
class EmbedSummary:
    texts: int = 0
    batches: int = 0
    per_instance: dict[str, int] = field(default_factory=dict)  # batches served by each instance id
    failures: list[tuple[str, str]] = field(default_factory=list)  # (instance id, reason)
    hedged: int = 0
    legacy: list[str] = field(default_factory=list)


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
                 timeouts: Timeouts, per_instance: int = 2, log: Log | None = None,
                 progress: Callable[[int], None] | None = None, feedback: bool = True):
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
        if self.error is not None:
            raise self.error
        if self.feedback:
            for instance_id, ok in self.last_ok.items():
                if ok:
                    _record(instance_id, True, self.latency.get(instance_id))
        self.summary.legacy = sorted(self.legacy)
        return self.summary

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
        if self.feedback:
            _feed(instance, error, self.model)
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
            data = await self._post(instance, "/api/embed", {"model": self.model, "input": texts})
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
                data = await self._post(instance, "/api/embeddings", {"model": self.model, "prompt": text})
            except RouteMissing as error:
                raise RouteMissing("HTTP 404: neither /api/embed nor /api/embeddings exists (not an Ollama"
                                   " server?)", instance, error.status) from None
            vector = data.get("embedding") if isinstance(data, dict) else None
            if not isinstance(vector, list) or not vector:
                raise NotOllama("the legacy /api/embeddings answer has no embedding", instance)
            vectors.append(vector)
        return vectors

    async def _post(self, instance: Instance, path: str, body: dict) -> Any:
        import asyncio

        import httpx

        content = json.dumps(body).encode()
        deadline = self.timeouts.first_byte
        try:
            response = await asyncio.wait_for(
                self.client.post(instance.url + path, content=content, headers=headers_for(instance)), deadline)
        except asyncio.TimeoutError:
            raise Timeout(f"no answer within the first-byte timeout ({seconds(deadline)} s)", instance) from None
        except httpx.HTTPError as exc:
            raise network_error(exc, instance, self.timeouts) from None
        if response.status_code != 200:
            raise status_error(response.status_code, response.content[:ERROR_BODY_LIMIT],
                               response.headers.get("location"), response.reason_phrase, instance)
        try:
            return json.loads(response.content)
        except ValueError:
            raise NotOllama("not an Ollama server (the answer is not JSON)", instance) from None


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
