"""The probes' HTTP client for one-shot commands (`health`, `ps`, `refresh`) on a fleet of up to
health.THREADS_UP_TO instances: plain blocking sockets, each request on its own thread, no asyncio
(importing asyncio cost ~40 ms, half of such a command; beyond that size its lower CPU per request
repays it).

The requests and the reading of answers are core/health/probe_wire's, as in the asyncio client
(core/health/probe_http), with the same guarantees: no proxy, redirects not followed, https verified
with httpx's context (ssl and httpx are imported only for an https instance), every read capped
(the head ANSWER_HEAD_LIMIT, the body the caller's limit). The deadline is an absolute time on
`clock`, one for all of a probe's requests: every socket operation (connect, TLS handshake, each
read) waits at most until it, and a request that reaches it raises `Late`; whoever waits for a
request (`Asked.wait`) stops waiting at the deadline too, so a name lookup that hangs (it takes no
timeout) holds a daemon thread, never the command. Each connection carries one request.
"""

from __future__ import annotations

import _socket  # socket.py's enums and helpers cost ~4 ms to import; only https needs them (ssl)
import threading
import time

from ollamactl.core.health.probe_wire import (
    ANSWER_HEAD_LIMIT,
    HAPPY_EYEBALLS_S,
    LINE,
    READ_SIZE,
    SOME,
    Answer,
    AnswerTimer,
    ProbeError,
    read_answer,
    request,
    split,
    verifying_context,
)
from ollamactl.core.http import CLOSED_EARLY, NOT_OLLAMA, network_words

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import ssl
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any, TypeVar

    from ollamactl.core.health.probe_wire import Reading

    T = TypeVar("T")
    R = TypeVar("R")


_WINDOWS_IN_PROGRESS = 10035  # WSAEWOULDBLOCK: a non-blocking connect under way, in Windows' numbers


class Late(Exception):
    """A request reached its deadline (the waiter says so, in its own words)."""


class Client:
    """GET requests for probes; `headers` are sent with every request."""

    def __init__(self, headers: dict[str, str], clock: Callable[[], float] = time.monotonic):
        self.head = [f"{name}: {value}" for name, value in headers.items()]
        self.clock = clock
        self.tls: ssl.SSLContext | None = None
        self.tls_lock = threading.Lock()

    def get(self, url: str, headers: dict[str, str], limit: int, error_limit: int, deadline: float,
            timer: AnswerTimer | None = None) -> Answer:
        """GET `url` (scheme://host:port/path) with `headers` by `deadline` (on `clock`); the body is
        read up to `limit` bytes for a 200 and `error_limit` for any other status. Raises
        ProbeError, or Late at the deadline."""
        origin, host_header, target = split(url)
        try:
            sock = self._connect(origin, deadline)
            try:
                if timer is not None:
                    timer.sent = time.perf_counter()
                sock.settimeout(self._left(deadline))
                sock.sendall(request(target, host_header, self.head, headers))
                return _Reader(sock, self, deadline).read(read_answer(limit, error_limit, timer))[0]
            finally:
                sock.close()
        except (Late, ProbeError):
            raise
        except TimeoutError as exc:
            if exc.errno is None:  # a socket timeout: the deadline (an ETIMEDOUT from the system has words)
                raise Late() from None
            raise ProbeError(network_words(exc, url)) from None
        except OSError as exc:
            raise ProbeError(network_words(exc, url)) from None
        except ValueError:  # a head line beyond the cap, or bytes that are not HTTP
            raise ProbeError(NOT_OLLAMA) from None

    def _left(self, deadline: float) -> float:
        left = deadline - self.clock()
        if left <= 0:
            raise Late()
        return left

    def _connect(self, origin: tuple[str, str, int], deadline: float) -> _socket.socket:
        """A connection to `origin` by the deadline: to its one address, or the first of several to
        accept (`_race`)."""
        scheme, host, port = origin
        try:  # ASCII as bytes: a str would go through the idna codec (an import of it and of unicodedata)
            name = host.encode("ascii") if host.isascii() else host.encode("idna")
        except UnicodeError:  # a label the codec refuses (empty, or 64+ characters): no such host
            raise _socket.gaierror(_socket.EAI_NONAME, "not a usable host name") from None
        make: Any = _socket.socket
        if scheme == "https":
            import socket

            make = socket.socket  # ssl wraps only socket.py's sockets
        addresses = _socket.getaddrinfo(name, port, type=_socket.SOCK_STREAM)
        sock: Any  # socket.py's for https
        if len(addresses) > 1:
            sock = self._race(make, addresses, deadline)
        else:
            family, kind, proto, _, address = addresses[0]
            sock = make(family, kind, proto)
            try:
                sock.settimeout(self._left(deadline))
                sock.connect(address)
            except BaseException:
                sock.close()
                raise
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if scheme != "https":
                return sock
            sock.settimeout(self._left(deadline))
            return self._tls().wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise

    def _race(self, make: Any, addresses: list[Any], deadline: float) -> _socket.socket:
        """The first of `addresses` to accept a connection (happy eyeballs, RFC 8305, as asyncio does
        for the other client): families interleaved, the next attempt begun HAPPY_EYEBALLS_S after the
        last, or at once when one fails; the error of the last failure when all do."""
        import errno
        import os
        import selectors

        waiting = _interleaved(addresses)
        trying: list[Any] = []
        error: OSError = ConnectionRefusedError(errno.ECONNREFUSED, "no address accepted")
        next_at = self.clock()
        with selectors.DefaultSelector() as selector:
            try:
                while waiting or trying:
                    if waiting and self.clock() >= next_at:
                        family, kind, proto, _, address = waiting.pop(0)
                        try:
                            sock = make(family, kind, proto)
                        except OSError as exc:  # a family this host cannot use (IPv6 disabled): the next one
                            error, next_at = exc, self.clock()
                            continue
                        sock.setblocking(False)
                        code = sock.connect_ex(address)
                        if code in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, _WINDOWS_IN_PROGRESS):
                            selector.register(sock, selectors.EVENT_WRITE, sock)
                            trying.append(sock)
                            next_at = self.clock() + HAPPY_EYEBALLS_S
                        else:
                            sock.close()
                            error = OSError(code, os.strerror(code))  # OSError picks the subclass the code names
                        continue
                    wait = self._left(deadline)
                    if waiting:
                        wait = max(0.0, min(wait, next_at - self.clock()))
                    for key, _ in selector.select(wait):
                        sock = key.data
                        selector.unregister(sock)
                        trying.remove(sock)
                        code = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
                        if code == 0:
                            return sock  # blocking again at its next settimeout
                        sock.close()
                        error = OSError(code, os.strerror(code))
                        next_at = self.clock()
                raise error
            finally:
                for sock in trying:
                    sock.close()

    def _tls(self) -> ssl.SSLContext:
        with self.tls_lock:
            if self.tls is None:
                self.tls = verifying_context()
            return self.tls


def _interleaved(addresses: list[Any]) -> list[Any]:
    """getaddrinfo's answers with their families taking turns (IPv6, IPv4, IPv6, ...: the first
    answer's family first), each family's in its order."""
    import itertools

    families: dict[int, list[Any]] = {}
    for info in addresses:
        families.setdefault(info[0], []).append(info)
    return [info for turn in itertools.zip_longest(*families.values()) for info in turn if info is not None]


class _Reader:
    """Bytes from a socket for probe_wire's reader: lines capped at ANSWER_HEAD_LIMIT, every wait
    until the deadline at most, the end of the stream before a need is met `CLOSED_EARLY`."""

    def __init__(self, sock: _socket.socket, client: Client, deadline: float):
        self.sock, self.client, self.deadline = sock, client, deadline
        self.buffer = bytearray()
        self.ended = False

    def read(self, reading: Reading) -> Any:
        need = next(reading)
        while True:
            try:
                need = reading.send(self._line() if need == LINE else self._some() if need == SOME
                                    else self._exactly(need))
            except StopIteration as end:
                return end.value

    def _more(self) -> bool:
        """Receive what has arrived into the buffer; False once the server closed."""
        if self.ended:
            return False
        self.sock.settimeout(self.client._left(self.deadline))
        data = self.sock.recv(READ_SIZE)
        self.ended = not data
        self.buffer += data
        return bool(data)

    def _take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _line(self) -> bytes:
        searched = 0
        while (end := self.buffer.find(b"\n", searched)) < 0:
            searched = len(self.buffer)
            if searched > ANSWER_HEAD_LIMIT:
                raise ValueError("a line beyond the cap")
            if not self._more():
                raise ProbeError(CLOSED_EARLY)
        if end >= ANSWER_HEAD_LIMIT:
            raise ValueError("a line beyond the cap")
        return self._take(end + 1)

    def _some(self) -> bytes:
        if not self.buffer:
            self._more()
        return self._take(len(self.buffer))

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._more():
                raise ProbeError(CLOSED_EARLY)
        return self._take(size)


class Asked:
    """`call()` running on a daemon thread: `wait(deadline)`, then its `value` or its `failure`."""

    def __init__(self, call: Callable[[], Any], clock: Callable[[], float] = time.monotonic):
        self.value: Any = None
        self.failure: BaseException | None = None
        self.clock = clock
        self.finished = threading.Event()  # not set by a call that ended with Late: it never answered
        threading.Thread(target=self._run, args=(call,), daemon=True).start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.value = call()
        except Late:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter, who decides
            self.failure = exc
        self.finished.set()

    def wait(self, deadline: float) -> bool:
        """Whether the call ended (answered or failed) before `deadline`."""
        return self.finished.wait(max(0.0, deadline - self.clock()))


def each(work: Callable[[T], R], items: Sequence[T], at_once: int,
         patience: Callable[[], float | None] = lambda: None,
         on_idle: Callable[[], None] = lambda: None) -> Iterator[tuple[int, R]]:
    """(index, work(item)) for every item, as each ends, with `work` running on `at_once` daemon
    threads; an exception in `work` is raised here. While nothing ends for `patience()` seconds
    (None: no limit), `on_idle()` is called."""
    import _queue  # queue.py adds what SimpleQueue does not need (heapq, its other queues)

    ended: _queue.SimpleQueue[tuple[int, Any, BaseException | None]] = _queue.SimpleQueue()
    indexes = iter(range(len(items)))
    taking = threading.Lock()

    def worker() -> None:
        while True:
            with taking:
                index = next(indexes, None)
            if index is None:
                return
            try:
                ended.put((index, work(items[index]), None))
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                ended.put((index, None, exc))

    for _ in range(min(at_once, len(items))):
        threading.Thread(target=worker, daemon=True).start()
    for _ in items:
        while True:
            wait = patience()
            try:
                index, value, failure = ended.get(timeout=None if wait is None else max(0.0, wait))
                break
            except _queue.Empty:
                on_idle()
        if failure is not None:
            raise failure
        yield index, value
