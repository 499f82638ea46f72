"""The Ollama client calls: streamed generate/chat with failover (embeddings: ollamactl.core.embed).

The rules (design.md "Proxying rules"; ollama-api.md is the wire contract):

- One httpx client per command (a plain `Client` for run's single stream, which measured faster
  than the async one; an `AsyncClient` for embed's fan-out) with `trust_env=False` (loopback
  instances never go through HTTP_PROXY) and `follow_redirects=False`; `Authorization: Bearer` is
  set per request, only with the key of the instance being called. Every error text has that key
  masked.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ollamactl.core.errors import OllamactlError

if TYPE_CHECKING:  # pragma: no cover

    import httpx

    from ollamactl.core.registry import Instance, Registry

DEFAULT_READ_TIMEOUT = 120.0  # seconds allowed between two NDJSON lines once a stream has begun
ERROR_BODY_LIMIT = 64 * 1024
_NEVER = float("inf")
_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")  # what a header value may hold (after stripping)

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
        from ollamactl.core.health import describe

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


def client_options(timeouts: Timeouts, instances: Sequence[Instance], connections: int) -> dict[str, Any]:
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
    first_output_s: float | None  # from sending the request to the first thing shown to the user


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
    with httpx.Client(**client_options(timeouts, order, 2)) as client:
        for number, instance in enumerate(order, 1):
            if log:
                log(f"attempt {number}/{len(order)}: {label(instance)}")
            sent = time.monotonic()
            attempt = _Attempt(_Watchdog(sent + timeouts.first_byte))
            try:
                final = _exchange(client, instance, path, payload, emit, attempt, timeouts, flush)
            except OllamaError as error:
                if feedback:
                    record_failure(instance, error, model)
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
                record(instance.id, True, latency_ms)
            return Completion(instance, final, failed,
                              None if attempt.first_output_at is None else attempt.first_output_at - sent)
    raise AllFailed(failed, f"all {len(failed)} attempt{'s' if len(failed) != 1 else ''} failed")


def _with_history(error: OllamaError, earlier: list[tuple[Instance, OllamaError]]) -> OllamaError:
    if earlier:
        before = "; ".join(str(e) for _, e in earlier)
        error.message = f"{error.message} (after: {before})"
    return error


def record_failure(instance: Instance, error: OllamaError, model: str | None) -> None:
    """Breaker feedback for one failed call: the request's own faults do not count against the server."""
    if isinstance(error, ModelNotFound):
        if model:
            from ollamactl.core import breaker

            breaker.forget_model(instance.id, model)
        record(instance.id, True)  # it answered correctly; it just lacks the model
    elif isinstance(error, BadRequest):
        record(instance.id, True)
    else:
        record(instance.id, False)


def record(instance_id: str, ok: bool, latency_ms: float | None = None) -> None:
    from ollamactl.core import breaker

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
