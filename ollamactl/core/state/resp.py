"""A small Redis (RESP2) client for the state store: one deadline per operation, capped replies, stdlib only.

The store sends a handful of commands (EVAL, HINCRBY, WATCH/MULTI/EXEC, ...), so a client library
is not needed, and redis-py costs 100-190 ms to import (asyncio, ssl, logging, ...) on every
`pick`. This one imports `socket` (and `ssl` for rediss://).

`Connection.start(seconds)` opens an operation: every send and receive until the next `start`,
connecting, TLS and logging in (AUTH, SELECT) included, must end within those seconds. The socket
timeout is recomputed from that one monotonic deadline before each system call, so a server that
trickles a byte at a time cannot stretch it. Replies are capped (MAX_BULK bytes for a string,
MAX_ITEMS values and MAX_BYTES bytes for everything one `send` reads back, MAX_DEPTH nesting), so a
server claiming a 2 GB string is refused when it says so. Any of that, a closed connection or
an error reply raises `RedisError`; the connection is then closed (the store falls back to its file).
"""

from __future__ import annotations

import socket
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from ollamactl.core.state.redis_url import Target

MAX_BULK = 32 * 1024 * 1024  # a health entry, the state's largest value, is far below (state.MAX_BYTES)
MAX_BYTES = 64 * 1024 * 1024
MAX_ITEMS = 250_000  # values in one reply: the state hashes (redis_store.HASHES) and 2 per health entry
MAX_DEPTH = 4  # the store's replies nest 3 deep (the read script: a list of lists)
MAX_LINE = 64 * 1024  # a status, error, number or length line
CONNECT_TIMEOUT_S = 0.5


class RedisError(Exception):
    """This Redis cannot be used now: no connection, past the deadline, a reply too large or not
    RESP, or an error reply (`ReplyError`)."""


class ReplyError(RedisError):
    """The server answered with an error (`-ERR ...`)."""


class Connection:
    """One connection to `target`, opened on first use, used by one operation at a time (the caller locks)."""

    def __init__(self, target: Target):
        self.target = target
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._pos = 0
        self._deadline = 0.0
        self._seconds = 0.0
        self._budget = [0, 0]  # bytes and values left for the replies of the current send

    def start(self, seconds: float) -> None:
        """Begin an operation: all I/O until the next `start` ends within `seconds` from now. An idle
        connection with something to read was closed by the server (a restart, its idle timeout):
        the operation opens a new one."""
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds
        if self._sock is not None and _readable(self._sock):
            self.close()

    def call(self, *args: str | int) -> object:
        """One command's reply (an error reply raises ReplyError)."""
        return self.send([args])[0]

    def send(self, commands: list[tuple[str | int, ...]]) -> list[object]:
        """Send `commands` at once (a pipeline) and read their replies; an error reply among them raises
        ReplyError once all are read. Nil is None, integers int, strings str (UTF-8, bad bytes replaced)."""
        try:
            if self._sock is None:
                self._open()
            replies = self._exchange(commands)
        except OSError as exc:
            why = self._why(exc)
            self.close()
            raise RedisError(why) from None
        except RedisError:
            self.close()
            raise
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise reply
        return replies

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buffer.clear()
                self._pos = 0

    # -- the wire ------------------------------------------------------------------------------------

    def _open(self) -> None:
        target = self.target
        timeout = min(CONNECT_TIMEOUT_S, self._remaining())
        if target.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(target.path)
            except BaseException:
                sock.close()
                raise
        else:
            host = _host_name(target)  # bytes: typeshed says str, but getaddrinfo takes either
            sock = socket.create_connection((host, target.port), timeout=timeout)  # type: ignore[arg-type]
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.tls:
                import ssl

                try:
                    sock.settimeout(self._remaining())
                    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
                except BaseException:
                    sock.close()
                    raise
        self._sock = sock
        login: list[tuple[str | int, ...]] = []
        if target.password is not None:
            login.append(("AUTH", target.username, target.password) if target.username else ("AUTH", target.password))
        if target.db:
            login.append(("SELECT", target.db))
        for reply in self._exchange(login) if login else ():
            if isinstance(reply, ReplyError):
                raise reply

    def _exchange(self, commands: list[tuple[str | int, ...]]) -> list[object]:
        payload = bytearray()
        for args in commands:
            payload += b"*%d\r\n" % len(args)
            for arg in args:
                data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
                payload += b"$%d\r\n%s\r\n" % (len(data), data)
        assert self._sock is not None
        self._sock.settimeout(self._remaining())
        self._sock.sendall(payload)
        self._budget = [MAX_BYTES, MAX_ITEMS]
        return [self._reply(0) for _ in commands]

    def _reply(self, depth: int) -> object:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return ReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return self._number(rest)
        if kind == b"$":
            size = self._number(rest)
            if size == -1:
                return None
            if not 0 <= size <= MAX_BULK:
                raise RedisError(f"the server announced a string of {size} bytes (at most {MAX_BULK} are read)")
            return self._exact(size).decode("utf-8", "replace")
        if kind == b"*":
            count = self._number(rest)
            if count == -1:
                return None
            self._budget[1] -= max(count, 0)
            if not 0 <= count <= MAX_ITEMS or self._budget[1] < 0:
                raise RedisError(f"the server announced {count} values (at most {MAX_ITEMS} are read in one reply)")
            if depth >= MAX_DEPTH:
                raise RedisError(f"the server's reply nests deeper than {MAX_DEPTH} levels")
            return [self._reply(depth + 1) for _ in range(count)]
        raise RedisError(f"not a Redis (RESP2) reply: {bytes(line[:40])!r}")

    @staticmethod
    def _number(text: bytes) -> int:
        try:
            return int(text)
        except ValueError:
            raise RedisError(f"not a Redis (RESP2) number: {text[:40]!r}") from None

    def _line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n", self._pos)
            if end >= 0:
                line = bytes(self._buffer[self._pos:end])
                self._pos = end + 2
                return line
            if len(self._buffer) - self._pos > MAX_LINE:
                raise RedisError(f"a reply line longer than {MAX_LINE} bytes")
            self._fill()

    def _exact(self, size: int) -> bytes:
        while len(self._buffer) - self._pos < size + 2:
            self._fill()
        data = bytes(self._buffer[self._pos:self._pos + size])
        if self._buffer[self._pos + size:self._pos + size + 2] != b"\r\n":
            raise RedisError("not a Redis (RESP2) reply: a string without its line end")
        self._pos += size + 2
        return data

    def _fill(self) -> None:
        if self._pos:
            del self._buffer[:self._pos]
            self._pos = 0
        assert self._sock is not None
        self._sock.settimeout(self._remaining())
        chunk = self._sock.recv(65536)
        if not chunk:
            raise RedisError("the server closed the connection")
        self._budget[0] -= len(chunk)
        if self._budget[0] < 0:
            raise RedisError(f"the server's reply is larger than {MAX_BYTES // (1024 * 1024)} MB")
        self._buffer += chunk

    def _remaining(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RedisError(self._late())
        return left

    def _late(self) -> str:
        return f"no complete answer within {self._seconds:g} s"

    def _why(self, exc: OSError) -> str:
        if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
            return self._late() if self._sock is not None else f"{self.target.address}: no connection in time"
        return f"{self.target.address}: {exc.strerror or exc}"


def _host_name(target: Target) -> bytes:
    """`target`'s host as getaddrinfo takes it. A str would go through the idna codec there: an import
    of encodings.idna, stringprep and unicodedata on every `pick`, and a UnicodeError (a traceback)
    for a label that is empty or too long; an ASCII name needs no IDNA, and a bad one is a RedisError."""
    host = target.host or ""
    if host.isascii():
        return host.encode("ascii")
    try:
        return host.encode("idna")
    except UnicodeError:
        raise RedisError(f"{target.address}: not a usable host name") from None


def _readable(sock: socket.socket) -> bool:
    import select

    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):  # ValueError: closed under us
        return True
