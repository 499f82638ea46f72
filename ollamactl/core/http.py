"""HTTP plumbing shared by every client of an Ollama server (health probes, run, embed, model
management): timeouts, request headers (a key only to its own instance), client settings, and the
error classes and plain words for every way a call can fail.

Errors map to classes whose `retryable` says whether another instance may be tried. Retryable:
the server could not serve this now (connect error, timeout, 5xx, 503 busy, 404 model not found,
a dropped connection). Not retryable: the request or the configuration is wrong (400, 401, other
4xx, a plain-text 404 = route missing, a redirect, an answer that is not Ollama's). Every error
text has the instance's key masked.
"""

from __future__ import annotations

import errno
import re

from ollamactl.core import server_json
from ollamactl.core.errors import OllamactlError
from ollamactl.core.registry.keys import keys_of, redact, sent_key
from ollamactl.core.settings import DEFAULTS

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence
    from typing import Any
    from typing import NamedTuple as Record

    import httpx

    from ollamactl.core.registry.instances import Instance, Registry
else:
    from ollamactl.core.records import Record  # not a dataclass: that would import inspect

DEFAULT_READ_TIMEOUT = 120.0  # seconds allowed between two NDJSON lines once a stream has begun
NOT_OLLAMA = "not an Ollama server"
CLOSED_EARLY = "the server closed the connection without a complete answer"

ERROR_BODY_LIMIT = 64 * 1024
MB = 1024 * 1024
LINE_LIMIT = 8 * MB  # one NDJSON line of a generate/chat answer (a stream:false answer is one line)
_HEADER_SAFE = re.compile(r"[\x20-\x7e]+")  # what a header value may hold (after stripping)


class Timeouts(Record):
    connect: float = DEFAULTS["connect_timeout"]
    first_byte: float = DEFAULTS["first_byte_timeout"]
    read: float = DEFAULT_READ_TIMEOUT
    # While an answer is awaited, the server is asked every `alive_every` s whether it still answers
    # at all, each time within `alive_within` s (the health probe's deadline): see core/health/liveness.py.
    alive_every: float = DEFAULTS["liveness_interval"]
    alive_within: float = DEFAULTS["timeout"]

    @classmethod
    def from_settings(cls, reg: Registry, connect: float | None = None, first_byte: float | None = None,
                      read: float | None = None, param: str = "first_byte_timeout") -> Timeouts:
        """The registry's timeouts, overridden by the values given (checked like the settings; `param`
        is the name the caller gives `first_byte`)."""
        from ollamactl.core.settings import checked

        for key, name, value in (("connect_timeout", "connect_timeout", connect),
                                 ("first_byte_timeout", param, first_byte)):
            if value is not None:
                checked(key, value, name)
        return cls(
            connect=connect if connect is not None else float(reg.setting("connect_timeout")),
            first_byte=first_byte if first_byte is not None else float(reg.setting("first_byte_timeout")),
            read=read if read is not None else DEFAULT_READ_TIMEOUT,
            alive_every=float(reg.setting("liveness_interval")),
            alive_within=float(reg.setting("timeout")),
        )


def label(instance: Instance) -> str:
    return f"{instance.id} ({instance.url})"


def seconds(value: float) -> str:
    text = f"{value:.1f}"
    return text if float(text) == value else f"{value:g}"



# ---------------------------------------------------------------------------------------------
# Errors


def too_large(limit: int) -> str:
    return f"answer too large (> {limit / MB:g} MB)"


class OllamaError(OllamactlError):
    """A failed call to one instance; `reason` is the words without the instance's name."""

    retryable = False

    def __init__(self, reason: str, instance: Instance | None = None, status: int | None = None,
                 hint: str | None = None):
        if instance is not None:
            reason = redact(reason, keys_of([instance]))
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


class AtCapacity(OllamaError):
    """Not sent: a failover found the instance at its max_inflight (filled since it was chosen)."""

    retryable = True


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


class Unresponsive(ConnectFailed):
    """The server stopped answering at all while a request waited on it (core/health/liveness.py)."""


class TooLarge(OllamaError):
    """The answer (or one line of it) is larger than any honest server sends: another may serve."""

    retryable = True

    def __init__(self, limit: int, instance: Instance | None = None):
        super().__init__(too_large(limit), instance)


class StreamBroken(OllamaError):
    """A stream failed after output had reached the user: never retried."""


class AllFailed(OllamaError):
    """Every attempt failed; `attempts` holds (instance, error) in order."""

    def __init__(self, attempts: list[tuple[Instance, OllamaError]], what: str = "every attempt failed"):
        self.attempts = attempts
        super().__init__(what)
        self.details = tuple(str(error) for _, error in attempts)


def status_error(status: int, content: bytes, location: str | None, reason_phrase: str,
                 instance: Instance) -> OllamaError:
    """The error class and words for a non-200 answer (`content`: the body, maybe cut short)."""
    message = error_message(content)
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



def error_message(content: bytes) -> str | None:
    """The server's `{"error": ...}` text, shortened, if it sent one."""
    try:
        data = server_json.loads(content)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"].strip():
        return short(data["error"])
    return None


def short(text: str, limit: int = 300) -> str:
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
            return ConnectFailed(CLOSED_EARLY, instance)
        return NotOllama("not an Ollama server (the answer is not valid HTTP)", instance)
    if isinstance(exc, httpx.DecodingError):
        return NotOllama("not an Ollama server (the answer cannot be decoded)", instance)
    if isinstance(exc, (httpx.NetworkError, OSError)):
        return ConnectFailed(network_words(exc, instance.url), instance)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ConnectFailed("unsupported URL scheme", instance)
    words = f"request failed: {short(str(exc)) or type(exc).__name__}"
    return ConnectFailed(words, instance) if isinstance(exc, httpx.TransportError) else OllamaError(words, instance)




def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, its causes and contexts, and the members of any exception group, without repeats."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(cause for cause in (current.__cause__, current.__context__) if cause is not None)
        todo.extend(getattr(current, "exceptions", None) or [])
        if isinstance(current, OSError) and current.args and isinstance(current.args[-1], list):
            todo.extend(e for e in current.args[-1] if isinstance(e, BaseException))
    return [e for e in seen if e is not None]


_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by the server",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EADDRNOTAVAIL: "address not available",
    errno.EMFILE: "too many open files (raise `ulimit -n` or lower the concurrency setting)",
    errno.EPIPE: "connection closed by the server",
}


def network_words(exc: BaseException, url: str) -> str:
    import socket
    import ssl

    chain = _chain(exc)
    for item in chain:
        if isinstance(item, socket.gaierror):
            return f"cannot resolve host {_host(url)}"
    for item in chain:
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return "TLS certificate not trusted: " + short(item.verify_message or "verification failed")
        if isinstance(item, ssl.SSLError):
            return "TLS handshake failed (is it an https server?)"
    for item in chain:
        if isinstance(item, OSError) and item.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[item.errno]
    text = " ".join(str(item) for item in chain).lower()
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return f"cannot resolve host {_host(url)}"
    if "refused" in text or "all connection attempts failed" in text:
        return "connection refused"
    if "reset" in text:
        return "connection reset by the server"
    for item in chain:
        if isinstance(item, OSError) and item.strerror:
            return "cannot connect: " + item.strerror.lower()
    return "cannot connect"


def _host(url: str) -> str:
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    if rest.startswith("["):
        return rest[: rest.find("]") + 1]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest



# ---------------------------------------------------------------------------------------------
# Plumbing


def headers_for(instance: Instance) -> dict[str, str]:
    """Request headers for `instance`: its own key, and only its own.

    Surrounding whitespace (a key file's newline) is dropped. A key an HTTP header cannot carry is
    refused here, in words that name where it came from: httpx's own error would quote the key.
    """
    headers = {"Content-Type": "application/json"}
    key = sent_key(instance)
    if key:
        if not _HEADER_SAFE.fullmatch(key):
            source = f"${instance.api_key_env}" if instance.api_key_env else "the registry"
            raise BadRequest(f"the API key from {source} cannot be sent: it holds a line break, a control or a"
                             " non-ASCII character", instance, hint="set the key again without it")
        headers["Authorization"] = f"Bearer {key}"
    return headers


async def read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of a streamed response's (decoded) body, and whether that is all of it.

    Reading stops at the cap: a server sending without end costs `limit` bytes of memory, no more.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), False
        size += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks), True


def client_headers() -> dict[str, str]:
    """What every request ollamactl sends carries, whichever client sends it (httpx or the probes'
    core/health/probe_http): who is asking, and no compression wanted."""
    from ollamactl.core import __version__

    return {"User-Agent": f"ollamactl/{__version__}", "Accept-Encoding": "identity"}


def client_options(timeouts: Timeouts, instances: Sequence[Instance], connections: int) -> dict[str, Any]:
    import httpx

    return dict(
        trust_env=False,  # loopback instances must never go through HTTP_PROXY
        follow_redirects=False,  # a key is sent only to its own instance
        # Building a TLS context costs ~15 ms of start-up: only when some instance speaks https.
        verify=any(i.url.startswith("https:") for i in instances),
        # Only the connect timeout is httpx's; the deadlines after it are enforced here (see top).
        timeout=httpx.Timeout(connect=timeouts.connect, read=None, write=None, pool=None),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        headers=client_headers(),
    )


