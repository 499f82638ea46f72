"""The health probes' HTTP client: GET over HTTP/1.1 on the stdlib's asyncio streams.

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
import zlib
from typing import TYPE_CHECKING, Any

from ollamactl.core.http import CLOSED_EARLY, NOT_OLLAMA, network_words

if TYPE_CHECKING:  # pragma: no cover
    import ssl

ANSWER_HEAD_LIMIT = 100 * 1024  # status line and headers of one answer (httpcore's limit)
IDLE_EXPIRY_S = 5.0  # an idle kept-alive connection is closed after this (httpx's default)
HAPPY_EYEBALLS_S = 0.25  # a name with IPv6 and IPv4 addresses: try the next after this (as anyio did)
_READ_SIZE = 64 * 1024

Origin = tuple[str, str, int]  # scheme, host (IPv6 without brackets), port


class ProbeError(Exception):
    """A probe failed; `words` is the message shown to people."""

    def __init__(self, words: str):
        super().__init__(words)
        self.words = words


class AnswerTimer:
    """When one request's head was sent and its answer's head arrived (perf_counter seconds):
    the server's time, without connecting or the client's own start-up."""

    __slots__ = ("sent", "answered")

    def __init__(self) -> None:
        self.sent: float | None = None
        self.answered: float | None = None

    def milliseconds(self) -> float | None:
        if self.sent is None or self.answered is None:
            return None
        return round((self.answered - self.sent) * 1000.0, 2)


class Answer:
    """A response: status, reason phrase, headers (names lower-cased), the body up to the cap and
    whether that is all of it."""

    __slots__ = ("status", "reason", "headers", "body", "whole")

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes, whole: bool):
        self.status, self.reason, self.headers, self.body, self.whole = status, reason, headers, body, whole


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
        origin, host_header, target = _split(url)
        reader, writer = await self._connection(origin, url)
        reusable = False
        try:
            lines = [f"GET {target} HTTP/1.1", f"Host: {host_header}", "Accept: application/json", *self.head]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            if timer is not None:
                timer.sent = time.perf_counter()
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            version, status, reason, answer_headers = await _read_head(reader)
            if timer is not None:
                timer.answered = time.perf_counter()
            cap = limit if status == 200 else error_limit
            body, whole, framed = await _read_body(reader, status, answer_headers, cap)
            body, whole = _decoded(body, whole, answer_headers.get("content-encoding", ""), cap)
            reusable = whole and framed and version == "HTTP/1.1" \
                and "close" not in answer_headers.get("connection", "").lower()
            return Answer(status, reason, answer_headers, body, whole)
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
        """httpx's own verifying context (its trust store and environment rules), made once."""
        if self.tls is None:
            import httpx

            self.tls = httpx.create_ssl_context()
            self.tls.set_alpn_protocols(["http/1.1"])
        return self.tls


def _split(url: str) -> tuple[Origin, str, str]:
    """(origin, Host header, request target) of a `scheme://host[:port]/path` URL."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    default = 443 if scheme == "https" else 80
    if authority.startswith("["):
        end = authority.find("]")
        host, port_text = authority[1:end], authority[end + 2:]
    else:
        host, _, port_text = authority.partition(":")
    port = int(port_text) if port_text else default
    host_header = authority if port != default else (f"[{host}]" if ":" in host else host)
    return (scheme, host, port), host_header, slash + path or "/"


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, int, str, dict[str, str]]:
    """The status line and headers of the next final (non-1xx) answer. ValueError: not HTTP;
    IncompleteReadError: the connection closed before a whole head arrived (as h11 reads it)."""
    while True:
        lines: list[bytes] = []
        size = 0
        while True:
            line = await reader.readuntil(b"\n")
            size += len(line)
            if size > ANSWER_HEAD_LIMIT:
                raise ValueError("the head is too large")
            line = line.rstrip(b"\r\n")
            if not line and lines:
                break
            if line:
                lines.append(line)
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise ValueError("not a status line")
        headers: dict[str, str] = {}
        key = ""
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t") and key:  # an obsolete folded line continues the last header
                headers[key] += " " + line.strip().decode("latin-1")
                continue
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise ValueError("not a header line")
            key = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            if key == "content-length" and headers.get(key, text) != text:
                raise ValueError("two lengths")
            headers[key] = f"{headers[key]}, {text}" if key in headers and key != "content-length" else text
        status = int(code)
        if not 100 <= status < 200:
            return version.decode(), status, reason.decode("latin-1"), headers


async def _read_body(reader: asyncio.StreamReader, status: int, headers: dict[str, str],
                     limit: int) -> tuple[bytes, bool, bool]:
    """(the body up to `limit` bytes, whether that is all of it, whether its end was framed so the
    connection may carry another request)."""
    if status in (204, 304):
        return b"", True, True
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.lower() != "chunked":  # the only transfer coding HTTP/1.1 answers use (h11's rule)
            raise ValueError("an unknown transfer coding")
        return await _read_chunked(reader, limit)
    length_text = headers.get("content-length")
    if length_text is not None:
        if not length_text.isdigit():
            raise ValueError("a bad length")
        length = int(length_text)
        if length > limit:
            return await reader.readexactly(limit), False, False
        return await reader.readexactly(length), True, True
    chunks: list[bytes] = []
    size = 0  # no framing: the body ends when the server closes the connection
    while True:
        chunk = await reader.read(_READ_SIZE)
        if not chunk:
            return b"".join(chunks), True, False
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), False, False
        size += len(chunk)
        chunks.append(chunk)


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> tuple[bytes, bool, bool]:
    chunks, size = [], 0
    while True:
        size_line = (await reader.readuntil(b"\n")).split(b";", 1)[0].strip()
        if not size_line or any(c not in b"0123456789abcdefABCDEF" for c in size_line):
            raise ValueError("a bad chunk size")
        length = int(size_line, 16)
        if length == 0:
            break
        if size + length > limit:
            chunks.append(await reader.readexactly(limit - size))
            return b"".join(chunks), False, False
        chunks.append(await reader.readexactly(length))
        size += length
        if (await reader.readuntil(b"\n")).strip():
            raise ValueError("chunk data longer than its size")
    trailers = 0
    while (await reader.readuntil(b"\n")).strip():  # trailer fields, then the empty line
        trailers += 1
        if trailers > 100:
            raise ValueError("endless trailers")
    return b"".join(chunks), True, True


def _decoded(body: bytes, whole: bool, encoding: str, limit: int) -> tuple[bytes, bool]:
    """Undo a gzip or deflate encoding a server applied although `identity` was asked for (as httpx
    did), keeping at most `limit` decoded bytes; other encodings are left as they are."""
    encoding = encoding.strip().lower()
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return body, whole
    attempts: tuple[Any, ...] = (zlib.MAX_WBITS | 16,) if encoding != "deflate" else (zlib.MAX_WBITS, -zlib.MAX_WBITS)
    for wbits in attempts:
        decoder = zlib.decompressobj(wbits)
        try:
            out = decoder.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or decoder.unconsumed_tail:
            return out[:limit], False
        return out, whole
    raise ValueError("the answer cannot be decoded")
