"""The probes' HTTP/1.1 without I/O: the request they send and the reading of one answer, for both
of their clients (core/health/probe_http on asyncio streams for `health --watch`, `top`, discovery and
the liveness checks; core/health/probe_threads on plain sockets for the one-shot `health` and `ps`).

`read_answer` is a generator that does no I/O: it yields what it needs next (LINE: bytes up to and
including the next b"\\n"; SOME: whatever has arrived, b"" once the server closed; a positive n:
exactly n bytes) and is sent those bytes; a client's driver does the reading with its own caps and
deadline, so both clients parse answers in the very same way:
- the response head is capped at ANSWER_HEAD_LIMIT, the body at the caller's limit (after undoing
  a gzip or deflate encoding a server sent unasked, the decoded size too);
- chunked, content-length and close-delimited bodies; 1xx answers are skipped (their heads count
  toward the head's cap); a 3xx is an answer like any other (redirects are not followed: a key goes
  only to its instance);
- bytes that are not HTTP raise ValueError (the clients' words: `not an Ollama server`).
"""

from __future__ import annotations

import time
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import ssl
    from collections.abc import Generator
    from typing import Any

    Reading = Generator[int, bytes, Any]

ANSWER_HEAD_LIMIT = 100 * 1024  # status line and headers of one answer (httpcore's limit)
READ_SIZE = 64 * 1024  # bytes asked of the network at once
HAPPY_EYEBALLS_S = 0.25  # a name with several addresses: the next is tried after this (as anyio did)
LINE = -1  # read_answer's needs: a line, whatever has arrived, or (a positive number) exactly that many bytes
SOME = 0

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


def split(url: str) -> tuple[Origin, str, str]:
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


def request(target: str, host_header: str, head: list[str], headers: dict[str, str]) -> bytes:
    """The bytes of `GET target`: the client's own header lines `head`, then the request's `headers`."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host_header}", "Accept: application/json", *head]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def verifying_context() -> ssl.SSLContext:
    """httpx's own verifying TLS context (its trust store and environment rules), with ALPN
    `http/1.1`; httpx is imported only here, when an https instance is probed."""
    import httpx

    context = httpx.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def read_answer(limit: int, error_limit: int, timer: AnswerTimer | None) -> Reading:
    """Read one answer (see the module's docstring): returns (the Answer, whether the connection
    may carry another request). The body is read up to `limit` bytes for a 200 and `error_limit`
    for any other status; `timer.answered` is set when the head is in."""
    version, status, reason, headers = yield from _head()
    if timer is not None:
        timer.answered = time.perf_counter()
    cap = limit if status == 200 else error_limit
    body, whole, framed = yield from _body(status, headers, cap)
    body, whole = _decoded(body, whole, headers.get("content-encoding", ""), cap)
    reusable = whole and framed and version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    return Answer(status, reason, headers, body, whole), reusable


def _head() -> Reading:
    """The status line and headers of the next final (non-1xx) answer. ValueError: not HTTP, or
    heads (interim ones included) beyond ANSWER_HEAD_LIMIT."""
    size = 0  # over every head: endless `100 Continue`s are an endless head
    while True:
        lines: list[bytes] = []
        while True:
            line = yield LINE
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


def _body(status: int, headers: dict[str, str], limit: int) -> Reading:
    """(the body up to `limit` bytes, whether that is all of it, whether its end was framed so the
    connection may carry another request)."""
    if status in (204, 304):
        return b"", True, True
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.lower() != "chunked":  # the only transfer coding HTTP/1.1 answers use (h11's rule)
            raise ValueError("an unknown transfer coding")
        return (yield from _chunked(limit))
    length_text = headers.get("content-length")
    if length_text is not None:
        if not length_text.isdigit():
            raise ValueError("a bad length")
        length = int(length_text)
        if length > limit:
            return (yield limit), False, False
        return ((yield length) if length else b""), True, True
    chunks: list[bytes] = []
    size = 0  # no framing: the body ends when the server closes the connection
    while True:
        chunk = yield SOME
        if not chunk:
            return b"".join(chunks), True, False
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), False, False
        size += len(chunk)
        chunks.append(chunk)


def _chunked(limit: int) -> Reading:
    chunks, size = [], 0
    while True:
        size_line = (yield LINE).split(b";", 1)[0].strip()
        if not size_line or any(c not in b"0123456789abcdefABCDEF" for c in size_line):
            raise ValueError("a bad chunk size")
        length = int(size_line, 16)
        if length == 0:
            break
        if size + length > limit:
            if limit > size:
                chunks.append((yield limit - size))
            return b"".join(chunks), False, False
        chunks.append((yield length))
        size += length
        if (yield LINE).strip():
            raise ValueError("chunk data longer than its size")
    trailers = 0
    while (yield LINE).strip():  # trailer fields, then the empty line
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
