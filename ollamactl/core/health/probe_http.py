"""The health probes' HTTP client on the stdlib's asyncio streams (`health --watch`, `top`, discovery,
liveness checks); the one-shot `health` and `ps` use core/health/probe_threads, the same requests and the
same reading of answers (core/health/probe_wire) on plain sockets, without asyncio's import cost.

Why not httpx here: a probe is three small GETs, and httpx (with httpcore, anyio and h11 under
it) spent ~2.7 ms of CPU on each, ~8 ms per instance: a 200-instance check cost 1.6 s of CPU
where a bare asyncio prober needs 0.3 s, and on a busy machine every probe of a large fleet ran
past its deadline. This client does the same requests for a fraction of that. It is for the
probes only (fixed GETs of small JSON answers); run, embed and model management keep httpx.

The probes' guarantees, as the httpx client gave them:
- no proxy, ever: it connects straight to the instance (httpx ran with `trust_env=False`);
- redirects are not followed: a 3xx is an answer like any other (a key goes only to its instance);
- https is verified with the same TLS context httpx builds (`httpx.create_ssl_context`, imported
  only when an https instance is probed), with SNI and ALPN `http/1.1`;
- every read has a cap: the response head ANSWER_HEAD_LIMIT, the body the caller's limit (after
  undoing a gzip or deflate encoding a server sent unasked, the decoded size too); reading stops
  there and the connection is dropped;
- the deadline is the caller's: `health.probe` bounds an instance's requests with one overall
  deadline and cancels what is left, which closes their connections;
- failures are words (`ProbeError.words`): network errors in core/http.py's words, an answer that
  is not HTTP `not an Ollama server`, a connection closed early as httpx's words said it.
Connections are kept alive per origin (scheme, host, port) and reused by the next probe of that
instance (`health --watch`), at most `idle_cap` in all and for IDLE_EXPIRY_S, as httpx did.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ollamactl.core.health.probe_wire import (
    ANSWER_HEAD_LIMIT,
    HAPPY_EYEBALLS_S,
    LINE,
    READ_SIZE,
    SOME,
    Answer,
    AnswerTimer,
    Origin,
    ProbeError,
    read_answer,
    request,
    split,
    verifying_context,
)
from ollamactl.core.http import CLOSED_EARLY, NOT_OLLAMA, network_words

if TYPE_CHECKING:  # pragma: no cover
    import ssl

    from ollamactl.core.health.probe_wire import Reading

IDLE_EXPIRY_S = 5.0  # an idle kept-alive connection is closed after this (httpx's default)


class ProbeClient:
    """GET requests for probes; an async context manager that closes its idle connections at exit."""

    def __init__(self, idle_cap: int, headers: dict[str, str]):
        self.idle_cap = idle_cap
        self.head = [f"{name}: {value}" for name, value in headers.items()]  # sent with every request
        self.idle: dict[Origin, list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]]] = {}
        self.idle_count = 0
        self.tls: ssl.SSLContext | None = None

    async def __aenter__(self) -> ProbeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for connections in self.idle.values():
            for _, writer, _ in connections:
                writer.transport.abort()
        self.idle.clear()
        self.idle_count = 0

    async def get(self, url: str, headers: dict[str, str], limit: int, error_limit: int,
                  timer: AnswerTimer | None = None) -> Answer:
        """GET `url` (scheme://host:port/path) with `headers`; the body is read up to `limit` bytes
        for a 200 and `error_limit` for any other status. Raises ProbeError."""
        origin, host_header, target = split(url)
        reader, writer = await self._connection(origin, url)
        reusable = False
        try:
            if timer is not None:
                timer.sent = time.perf_counter()
            writer.write(request(target, host_header, self.head, headers))
            answer, reusable = await _read(read_answer(limit, error_limit, timer), reader)
            return answer
        except OSError as exc:
            raise ProbeError(network_words(exc, url)) from None
        except asyncio.IncompleteReadError:
            raise ProbeError(CLOSED_EARLY) from None
        except (asyncio.LimitOverrunError, ValueError):  # a head line beyond the cap, or bytes that are not HTTP
            raise ProbeError(NOT_OLLAMA) from None
        finally:
            if reusable:
                self._release(origin, reader, writer)
            else:
                writer.transport.abort()

    async def _connection(self, origin: Origin, url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """An idle kept-alive connection to `origin` that is still open, else a new one."""
        idle = self.idle.get(origin)
        now = time.monotonic()
        while idle:
            reader, writer, since = idle.pop()
            self.idle_count -= 1
            if now - since < IDLE_EXPIRY_S and not reader.at_eof() and not writer.transport.is_closing():
                return reader, writer
            writer.transport.abort()
        scheme, host, port = origin
        # An address has one way to reach it; a name may have several (IPv6 and IPv4): race them.
        race = None if host.replace(".", "").isdigit() or ":" in host else HAPPY_EYEBALLS_S
        try:
            if scheme == "https":
                return await asyncio.open_connection(host, port, ssl=self._tls(), server_hostname=host,
                                                     limit=ANSWER_HEAD_LIMIT, happy_eyeballs_delay=race)
            return await asyncio.open_connection(host, port, limit=ANSWER_HEAD_LIMIT, happy_eyeballs_delay=race)
        except OSError as exc:
            raise ProbeError(network_words(exc, url)) from None

    def _release(self, origin: Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.idle_count >= self.idle_cap:
            writer.transport.abort()
            return
        self.idle.setdefault(origin, []).append((reader, writer, time.monotonic()))
        self.idle_count += 1

    def _tls(self) -> ssl.SSLContext:
        if self.tls is None:
            self.tls = verifying_context()
        return self.tls


async def _read(reading: Reading, reader: asyncio.StreamReader) -> Any:
    """Drive `reading` (probe_wire's answer reader) with bytes from `reader`; what it returns."""
    need = next(reading)
    while True:
        if need == LINE:
            data = await reader.readuntil(b"\n")
        elif need == SOME:
            data = await reader.read(READ_SIZE)
        else:
            data = await reader.readexactly(need)
        try:
            need = reading.send(data)
        except StopIteration as end:
            return end.value
