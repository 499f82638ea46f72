"""The Ollama client calls: streamed generate/chat with failover (embeddings: ollamactl.core.proxy.embed).

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
  loop only moves a number. Until the answer's head arrives, the same watchdog asks the server
  whether it still answers at all (core/health/liveness.py): a hung one is failed over in seconds, while a
  cold load on a responsive one keeps the whole first-byte timeout.
- NDJSON is split on b"\\n" here (Ollama leaves U+2028 unescaped, which `iter_lines` splits on),
  and one line may hold at most LINE_LIMIT bytes (a server sending without end fails the attempt);
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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypedDict

from ollamactl.core import server_json, settings
from ollamactl.core.health import liveness
from ollamactl.core.http import (
    ERROR_BODY_LIMIT,
    LINE_LIMIT,
    AllFailed,
    AtCapacity,
    ConnectFailed,
    NotOllama,
    OllamaError,
    ServerError,
    StreamBroken,
    Timeout,
    Timeouts,
    TooLarge,
    client_options,
    headers_for,
    label,
    network_error,
    seconds,
    short,
    status_error,
)
from ollamactl.core.metrics import counters as metrics

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from ollamactl.core.health.breaker import Feedback
    from ollamactl.core.registry.instances import Instance

_NEVER = float("inf")
# Lines that are already waiting are shown in one write, but never held longer than this: a server
# streaming faster than we read would otherwise keep the first words back until its stream ends.
FLUSH_EVERY_S = 0.05

Log = Callable[[str], None]
Emit = Callable[[bytes, dict], bool]  # (raw line, parsed object) -> True once it showed something
Flush = Callable[[], None]

@dataclass(frozen=True)
class GenerateRequest:
    """One generate or chat call, as typed values: what is sent (`path` and `body()` are its wire
    form) and where it may go (how `Fleet.stream` chooses and fails over). Built once, by the caller."""

    model: str
    prompt: str
    chat: bool = False
    system: str | None = None
    stream: bool = True
    format: Any = None  # "json" or a JSON-schema object
    options: dict[str, Any] | None = None
    keep_alive: Any = None  # a duration string or seconds
    think: bool | None = None
    # Where it goes: the named instance (no selection, no failover), else chosen as `pick` chooses.
    instance: str | None = None
    strategy: str | None = None  # None: [settings] strategy
    key: str | None = None  # sticky: the same key gets the same instance
    tries: int = settings.DEFAULT_TRIES  # instances to try before giving up
    wait: float | None = None  # seconds to wait for a free slot (None: [settings] wait)
    strict: bool = False  # no fallback to the default instance
    timeouts: Timeouts | None = None  # None: the registry's settings

    @property
    def path(self) -> str:
        return "/api/chat" if self.chat else "/api/generate"

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.chat:
            messages = [{"role": "system", "content": self.system}] if self.system is not None else []
            body["messages"] = messages + [{"role": "user", "content": self.prompt}]
        else:
            body["prompt"] = self.prompt
            if self.system is not None:
                body["system"] = self.system
        body["stream"] = self.stream
        optional = {"format": self.format, "options": self.options or None, "keep_alive": self.keep_alive,
                    "think": self.think}
        body.update((key, value) for key, value in optional.items() if value is not None)
        return body


class GenerateFields(TypedDict, total=False):
    """The keywords `Fleet.generate` takes, typed for a type checker: GenerateRequest's fields after
    `model` and `prompt` (tests/test_library_types.py holds the two alike)."""

    chat: bool
    system: str | None
    stream: bool
    format: Any
    options: dict[str, Any] | None
    keep_alive: Any
    think: bool | None
    instance: str | None
    strategy: str | None
    key: str | None
    tries: int
    wait: float | None
    strict: bool
    timeouts: Timeouts | None


def text_fragment(obj: dict, chat: bool) -> str | None:
    """The answer text one NDJSON line carries (generate: `response`; chat: `message.content`)."""
    if chat:
        message = obj.get("message")
        text = message.get("content") if isinstance(message, dict) else None
    else:
        text = obj.get("response")
    return text if isinstance(text, str) else None


class _Watchdog:
    """Aborts a blocking exchange once `deadline` (time.monotonic) has passed, or once the server
    stops answering while the first line is awaited, from its own thread.

    The thread sleeps until the deadline, re-reads it (the hot loop moves it forward by storing a
    number, or pauses it while it writes by storing infinity), and when it has really passed shuts
    the connection's socket down: the blocked read returns at once and the caller sees `fired`.
    Socket shutdown is safe from another thread. With `alive` (a check returning why the server
    gave no answer, or None: core/health/liveness.py), it also asks the server every `every` s until the
    first line (`answered`); a check that fails sets `lost` (its words) and fires.
    """

    def __init__(self, deadline: float, alive: Callable[[float], str | None] | None = None, every: float = 0.0,
                 within: float = 0.0):
        self.deadline = deadline
        self.fired = False
        self.lost: str | None = None
        self._alive = alive
        self._every = every
        self._within = within
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

    def answering(self) -> None:
        """The answer's head has come: the server is there; no more liveness checks."""
        with self._lock:
            self._alive = None

    def _watch(self) -> None:
        check_at = time.monotonic() + self._every
        while not self._stopped:
            now = time.monotonic()
            delay = self.deadline - now
            if delay <= 0:
                self._fire()
                return
            # A check that could not end before the deadline is left to the deadline.
            if self._alive is not None and now + self._within < self.deadline:
                if now >= check_at:
                    if self._lost():
                        return
                    check_at = time.monotonic() + self._every
                    continue
                delay = min(delay, check_at - now)
            # Paused (deadline never: the caller is writing) -> look again soon, as it may come back.
            self._signal.wait(delay if delay != _NEVER else 0.5)
            self._signal.clear()

    def _lost(self) -> bool:
        """Ask the server; True (and fired) when it gave no answer and no answer head came meanwhile."""
        alive = self._alive
        why = alive(self._within) if alive is not None else None
        with self._lock:
            if why is None or self._alive is None or self._stopped:
                return False
            self.lost = why
        self._fire()
        return True

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

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
    """A finished generation: who served it, its last line, and when output began."""

    instance: Instance
    final: dict
    first_output_s: float | None  # from sending the request to the first thing shown to the user
    first_output_at: float | None = None  # time.monotonic() of that moment


class _Attempt:
    __slots__ = ("started", "first_line_at", "first_output_at", "dog")

    def __init__(self, dog: _Watchdog) -> None:
        self.started = False
        self.first_line_at: float | None = None
        self.first_output_at: float | None = None
        self.dog = dog


def complete(instances: Sequence[Instance], request: GenerateRequest, emit: Emit, *, timeouts: Timeouts,
             log: Log | None = None, feedback: Feedback | None = None, flush: Flush | None = None,
             on_attempt: Callable[[Instance], bool] | None = None) -> Completion:
    """Send `request` to the first of `instances` that serves it (at most `request.tries` of them),
    failing over before any output.

    `emit(raw_line, obj)` is called for every NDJSON line that is not an error and returns True once
    it has shown something to the user; from then on a failure raises StreamBroken (never retried).
    `flush()` is called whenever the next read could wait for the network, so everything emitted is
    out before any wait, while a burst of lines already received costs one flush, not one per line;
    the first text is flushed at once, and a long burst at least every FLUSH_EVERY_S.
    `feedback` (breaker.Feedback) learns each attempt's outcome for the circuit breaker;
    `on_attempt(instance)` is asked before each attempt (the caller's lease follows it); False: the
    instance is at its max_inflight, so it is skipped (AtCapacity among the attempts).
    Synchronous on purpose: this is the hot path (a blocking read per chunk is the cheapest loop).
    """
    import httpx

    order = list(instances)[: max(1, request.tries)]
    path, payload = request.path, json.dumps(request.body()).encode()
    failed: list[tuple[Instance, OllamaError]] = []
    model = request.model
    options = client_options(timeouts, order, 2)
    if not options["verify"]:  # no instance speaks https: no TLS context (core/proxy/plain_transport.py)
        from ollamactl.core.proxy.plain_transport import PlainTransport

        options["transport"] = PlainTransport(options["limits"])
    with httpx.Client(**options) as client:
        for number, instance in enumerate(order, 1):
            if log:
                log(f"attempt {number}/{len(order)}: {label(instance)}")
            if on_attempt is not None and not on_attempt(instance):
                failed.append((instance, AtCapacity(f"not sent: at its max_inflight ({instance.max_inflight})",
                                                    instance)))
                _failing_over(log, failed[-1], order, number)
                continue
            sent = time.monotonic()
            attempt = _Attempt(_Watchdog(sent + timeouts.first_byte, partial(liveness.silent_now, instance),
                                         timeouts.alive_every, timeouts.alive_within))
            try:
                final = _exchange(client, instance, path, payload, emit, attempt, timeouts, flush)
            except OllamaError as error:
                if feedback is not None:
                    feedback.failure(instance, error, model, midstream=attempt.started)
                if attempt.started:
                    raise StreamBroken(f"the stream failed after output had started: {error.reason}"
                                       " (the output so far is kept; not retried)", instance) from None
                failed.append((instance, error))
                if not error.retryable:
                    raise _with_history(error, failed[:-1]) from None
                _failing_over(log, failed[-1], order, number)
                continue
            finally:
                attempt.dog.stop()
            latency_ms = ((attempt.first_line_at or sent) - sent) * 1000.0
            if feedback is not None:
                tokens, eval_s = metrics.speed(final)
                feedback.success(instance.id, latency_ms, metrics.Sample(
                    model=model, first_token_s=latency_ms / 1000.0, tokens=tokens, eval_s=eval_s))
            return Completion(instance, final,
                              None if attempt.first_output_at is None else attempt.first_output_at - sent,
                              attempt.first_output_at)
    raise AllFailed(failed, f"all {len(failed)} attempts failed" if len(failed) > 1 else "the attempt failed")


def _failing_over(log: Log | None, failure: tuple[Instance, OllamaError], order: list[Instance], number: int) -> None:
    """Log attempt `number`'s failure, and which instance is tried next."""
    if log:
        instance, error = failure
        following = order[number] if number < len(order) else None
        then = f"; trying {label(following)}" if following else ""
        log(f"{label(instance)} failed: {error.reason}{then}")


def _with_history(error: OllamaError, earlier: list[tuple[Instance, OllamaError]]) -> OllamaError:
    error.details = tuple(f"tried before: {e}" for _, e in earlier)
    return error


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
    dog.answering()
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
    if attempt.dog.lost is not None:
        return liveness.stopped(instance, attempt.dog.lost)
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
    loads = server_json.loads
    monotonic = time.monotonic
    read_timeout = timeouts.read
    dog = attempt.dog
    final: dict | None = None
    started = attempt.started
    flushed_at = -_NEVER  # the first output goes out at once
    buffer = b""
    encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
    for chunk in response.iter_bytes() if encoded else response.iter_raw():
        if b"\n" not in chunk:
            buffer += chunk
            if len(buffer) > LINE_LIMIT:
                raise TooLarge(LINE_LIMIT, instance)
            continue
        if buffer:
            chunk = buffer + chunk
        *lines, buffer = chunk.split(b"\n")
        for line in lines:  # _line() inlined: this runs once per token
            try:
                obj = loads(line)
            except ValueError as error:
                if line.strip():
                    raise _not_json(error, instance) from None
                continue
            if type(obj) is not dict:
                raise NotOllama("not an Ollama server (a line of the answer is not a JSON object)", instance)
            if "error" in obj:
                raise ServerError(f"the server reported: {short(obj['error'])}", instance)
            if emit(line, obj) and not started:
                started = attempt.started = True
                attempt.first_output_at = monotonic()
            if obj.get("done"):
                final = obj
        if attempt.first_line_at is None:  # from the first-byte deadline to the (shorter) one between lines
            attempt.first_line_at = monotonic()
            dog.move(attempt.first_line_at + read_timeout)
        if flush is not None and (not pending() or monotonic() - flushed_at >= FLUSH_EVERY_S):
            dog.deadline = _NEVER  # our own write may block on a slow reader: that is not the server's silence
            flush()
            if started:
                flushed_at = monotonic()
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


def _not_json(error: ValueError, instance: Instance) -> NotOllama:
    return NotOllama(server_json.not_ollama(error, "a line of the answer is not JSON"), instance)


def _line(line: bytes, loads: Callable, instance: Instance, emit: Emit, attempt: _Attempt) -> dict | None:
    try:
        obj = loads(line)
    except ValueError as error:
        if not line.strip():
            return None
        raise _not_json(error, instance) from None
    if type(obj) is not dict:
        raise NotOllama("not an Ollama server (a line of the answer is not a JSON object)", instance)
    if "error" in obj:
        raise ServerError(f"the server reported: {short(obj['error'])}", instance)
    if emit(line, obj) and not attempt.started:
        attempt.started = True
        attempt.first_output_at = time.monotonic()
    return obj if obj.get("done") else None
