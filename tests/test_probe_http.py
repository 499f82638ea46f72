"""The probes' own HTTP clients (core/health/probe_threads, core/health/probe_http) against raw
servers on 127.0.0.1: the answers a real server may give (chunked, compressed, over TLS), the ones a
hostile or broken one gives (endless, oversized, not HTTP, cut short), and kept-alive connections
while `health --watch` runs.

The TLS files under tests/data/tls are a throwaway CA and a certificate for 127.0.0.1 signed by
it, valid until 2126, made with:
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \\
      -days 36500 -subj "/CN=ollamactl test CA" -addext basicConstraints=critical,CA:TRUE \\
      -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \\
      -subj /CN=127.0.0.1
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -out server.pem -days 36500 -extfile leaf.ext
(leaf.ext: CA:FALSE, serverAuth, subjectAltName IP:127.0.0.1 and DNS:localhost, key identifiers.)
"""

from __future__ import annotations

import gzip
import itertools
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ollamactl.core.health import monitor, probe_threads
from ollamactl.core.health import probe as health
from ollamactl.core.registry.instances import Instance

TLS = Path(__file__).parent / "data" / "tls"
VERSION = json.dumps({"version": "0.12.6"}).encode()
TAGS = json.dumps({"models": [{"name": "llama3.2:latest", "digest": "d" * 64, "size": 7}]}).encode()
PS = json.dumps({"models": [{"name": "llama3.2:latest"}]}).encode()
Reply = Callable[[str], "bytes | Iterator[bytes] | None"]


def whole(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(body: bytes, pieces: int = 3, trailer: str = "") -> bytes:
    step = max(1, len(body) // pieces)
    out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    for start in range(0, len(body), step):
        piece = body[start:start + step]
        out += f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n" + trailer.encode() + b"\r\n"


def ollama(path: str) -> bytes:
    return whole({"/api/version": VERSION, "/api/tags": TAGS, "/api/ps": PS}[path])


class RawServer:
    """Answers every request on a kept-alive connection with the bytes `reply(path)` gives (an
    iterator: written piece by piece until the client leaves; None: the connection is closed
    unanswered), counting connections and requests. With `tls`, it speaks https."""

    def __init__(self, reply: Reply, tls: ssl.SSLContext | None = None):
        self.reply, self.tls = reply, tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.paths: list[str] = []
        self.threads: list[threading.Thread] = []
        self.open: list[socket.socket] = []
        self.stopping = threading.Event()
        self.accepter = threading.Thread(target=self.accept, daemon=True)
        self.accepter.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self.open.append(conn)
            thread = threading.Thread(target=self.serve, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
                self.open.append(conn)
            stream = conn.makefile("rb")
            while True:
                request = stream.readline()
                if not request:
                    return
                while stream.readline() not in (b"\r\n", b""):
                    pass
                path = request.split(b" ")[1].decode()
                self.paths.append(path)
                answer = self.reply(path)
                if answer is None:
                    return
                if isinstance(answer, bytes):
                    conn.sendall(answer)
                    continue
                for piece in answer:
                    if self.stopping.is_set():
                        return
                    conn.sendall(piece)
                return
        except OSError:  # the client left (the point of a cap) or refused the certificate
            return
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        for conn in self.open:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def raw() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(reply: Reply, tls: ssl.SSLContext | None = None) -> RawServer:
        servers.append(RawServer(reply, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(params=["threads", "asyncio"])
def probe(request) -> Callable[..., health.HealthResult]:
    """A probe of one instance by the one-shot commands' client (threads, core/health/probe_threads) or
    by `--watch`'s (asyncio, core/health/probe_http): both read answers alike (core/health/probe_wire)."""
    import asyncio

    def by_threads(url: str, timeout: float = 3.0) -> health.HealthResult:
        return health.check([Instance(id="x", name="x", url=url)], timeout=timeout)[0]

    def by_asyncio(url: str, timeout: float = 3.0) -> health.HealthResult:
        return asyncio.run(health.check_async([Instance(id="x", name="x", url=url)], timeout=timeout))[0]

    return by_threads if request.param == "threads" else by_asyncio


def test_chunked_and_compressed_answers_are_read_as_the_same_json(raw, probe):
    def reply(path: str) -> bytes:
        if path == "/api/version":
            return chunked(VERSION)
        if path == "/api/tags":  # compressed although the probe asked for identity
            return whole(gzip.compress(TAGS), "Content-Encoding: gzip")
        return chunked(PS, trailer="X-Checked: yes\r\n")

    result = probe(raw(reply).url)
    assert result.healthy, result.error
    assert result.version == "0.12.6"
    assert result.models == [{"name": "llama3.2:latest", "digest": "d" * 64, "size": 7}]
    assert result.loaded == ["llama3.2:latest"]


def test_endless_and_oversized_answers_stop_at_the_cap(raw, probe):
    def endless_chunks() -> Iterator[bytes]:
        yield b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        while True:
            yield b"10000\r\n" + b" " * 0x10000 + b"\r\n"

    endless = raw(lambda path: endless_chunks() if path == "/api/tags" else ollama(path))
    assert probe(endless.url, timeout=20).error == f"answer too large (> {health.BODY_LIMIT >> 20} MB)"
    huge_head = raw(lambda path: whole(b"{}", "X-Filler: " + "a" * 200_000))
    assert probe(huge_head.url).error == "not an Ollama server"


@pytest.mark.parametrize("reply, words", [
    (lambda path: b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an Ollama server"),
    (lambda path: iter([b"SSH-2.0-OpenSSH_9.6\r\n"]), "the server closed the connection without a complete answer"),
    (lambda path: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{}", "not an Ollama server"),
    (lambda path: None, "the server closed the connection without a complete answer"),
    (lambda path: iter([whole(VERSION)[:-5]]), "the server closed the connection without a complete answer"),
    (lambda path: whole(b"{}", "Location: http://elsewhere:1/", status="307 Temporary Redirect"),
     "HTTP 307: redirected to http://elsewhere:1/ (not followed)"),
])
def test_broken_answers_in_the_same_words(raw, probe, reply, words):
    result = probe(raw(reply).url)
    assert (result.healthy, result.error) == (False, words)


def test_the_words_shown_do_not_depend_on_which_answer_comes_back_first(raw, probe):
    def reply(path: str) -> bytes:
        if path == "/api/version":  # the first request fails last: its words are still the ones shown
            time.sleep(0.3)
            return whole(json.dumps({"error": "runner crashed"}).encode(), status="500 Internal Server Error")
        return whole(b"404 page not found", status="404 Not Found")

    result = probe(raw(reply).url)
    assert (result.healthy, result.error) == (False, "HTTP 500: runner crashed")


def test_https_is_verified_with_the_trust_store_httpx_would_use(raw, probe, monkeypatch):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "server.pem", TLS / "server.key")
    server = raw(ollama, tls=context)
    refused = probe(server.url)
    assert not refused.healthy and refused.error.startswith("TLS certificate not trusted: "), refused.error
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "ca.pem"))  # as httpx honours it
    trusted = probe(server.url)
    assert trusted.healthy and trusted.version == "0.12.6", trusted.error


def test_watch_keeps_each_instance_connections_alive_between_checks(raw):
    server = raw(ollama)
    results: list[health.HealthResult] = []
    monitor.watch([Instance(id="x", name="x", url=server.url)],
                  monitor.Schedule(interval=0.05, timeout=2.0, concurrency=4, tick=0.05),
                  monitor.Hooks(on_start=lambda _: None, on_result=results.append, on_tick=lambda: None,
                                stop=lambda: len(results) >= 3), store=None)
    assert [r.healthy for r in results] == [True, True, True]
    assert len(server.paths) == 9 and server.connections == 3  # three requests at once, then reused


# ---------------------------------------------------------------------------------------------
# The threads' client (one-shot `health` and `ps`): the deadline and the caps, by the code path


def test_a_server_trickling_past_the_deadline_is_cut_there(raw):
    cut = threading.Event()
    sent: list[int] = []

    def trickle(path: str) -> Iterator[bytes]:
        try:
            yield b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n"
            for _ in range(2000):  # a byte every 5 ms: a read timeout alone would never fire
                time.sleep(0.005)
                yield b"x"
                sent.append(1)
        finally:
            cut.set()  # the client hung up, or all was sent

    server = raw(trickle)
    looks = itertools.count()
    client = probe_threads.Client({}, clock=lambda: next(looks) * 0.5)  # each look at the clock: 0.5 s later
    with pytest.raises(probe_threads.Late):
        client.get(server.url + "/api/tags", {}, health.BODY_LIMIT, 1024, deadline=client.clock() + 3.0)
    assert next(looks) <= 8  # connect, send, a few reads: the clock was looked at before each, until the deadline
    assert cut.wait(30) and len(sent) < 2000  # and it hung up while the server still had bytes to send


@pytest.mark.parametrize("answer", [
    lambda: iter([b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n", *(b"x" * 65536 for _ in range(40))]),
    lambda: iter([b"HTTP/1.1 200 OK\r\n\r\n", *(b"x" * 65536 for _ in range(40))]),  # ends when the server closes
    lambda: iter([b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000000000\r\n\r\n", *(b"x" * 65536 for _ in range(40))]),
])
def test_a_body_claimed_or_sent_beyond_the_cap_is_cut_at_the_cap(raw, answer):
    server = raw(lambda path: answer())
    got = probe_threads.Client({}).get(server.url + "/api/tags", {}, 1000, 100, deadline=time.monotonic() + 30)
    assert (got.whole, len(got.body)) == (False, 1000 if got.status == 200 else 100)


@pytest.mark.parametrize("command", ["health", "ps"])
def test_hung_instances_are_waited_for_together_each_under_one_deadline(raw, monkeypatch, command):
    release = threading.Event()
    servers = [raw(lambda path: None if release.wait(30) else None) for _ in range(4)]
    starts: list[tuple[str, float]] = []
    started_when_one_ended: list[int] = []
    real_get = probe_threads.Client.get

    def get(self, url, headers, limit, error_limit, deadline, timer=None):  # type: ignore[no-untyped-def]
        starts.append((url.split("/api/")[0], deadline))
        try:
            return real_get(self, url, headers, limit, error_limit, deadline, timer)
        finally:
            started_when_one_ended.append(len(starts))

    monkeypatch.setattr(probe_threads.Client, "get", get)
    instances = [Instance(id=f"h{n}", name=f"h{n}", url=server.url) for n, server in enumerate(servers)]
    requests = 4 * (3 if command == "health" else 1)
    try:
        errors = [r.error for r in health.check(instances, timeout=0.5)] if command == "health" \
            else [error for _, error in health.loaded_models(instances, timeout=0.5)]
        assert errors == ["timed out after 0.5 s"] * 4
        for _ in range(1000):  # the requests' threads end at their deadline, just after the waiters
            if len(started_when_one_ended) == requests:
                break
            time.sleep(0.01)
    finally:
        release.set()
    assert min(started_when_one_ended) == requests  # every request had started before any ended
    deadlines: dict[str, set[float]] = {}
    for url, deadline in starts:
        deadlines.setdefault(url, set()).add(deadline)
    assert sorted(deadlines) == sorted(s.url for s in servers)
    assert all(len(given) == 1 for given in deadlines.values())  # one deadline for all of an instance's requests


@pytest.mark.parametrize("threads_up_to, on_threads", [(32, True), (2, False)])
def test_a_fleet_over_threads_up_to_is_probed_on_an_event_loop_with_the_same_answers(raw, monkeypatch, threads_up_to,
                                                                                      on_threads):
    monkeypatch.setattr(health, "THREADS_UP_TO", threads_up_to)  # 3 instances: on threads, or (over 2) not
    used: list[int] = []
    real_each = probe_threads.each
    monkeypatch.setattr(probe_threads, "each", lambda *args: (used.append(1), real_each(*args))[1])
    good = raw(ollama)
    no_ps = whole(b"404 page not found", status="404 Not Found")  # Ollama before 0.1.38
    legacy = raw(lambda path: ollama(path) if path != "/api/ps" else no_ps)
    failing = raw(lambda path: whole(json.dumps({"error": "boom"}).encode(), status="500 Internal Server Error"))
    instances = [Instance(id=name, name=name, url=server.url)
                 for name, server in (("good", good), ("legacy", legacy), ("failing", failing))]
    results = health.check(instances, timeout=3.0)
    assert [(r.healthy, r.error, r.loaded) for r in results] == [
        (True, None, ["llama3.2:latest"]), (True, None, None), (False, "HTTP 500: boom", None)]
    assert health.loaded_models(instances, timeout=3.0) == [
        ([{"name": "llama3.2:latest"}], None), (None, None), (None, "HTTP 500: boom")]
    assert bool(used) == on_threads


@pytest.mark.parametrize("first", ["refusing", "silent"])
def test_a_name_whose_first_address_does_not_answer_is_reached_through_the_next(raw, probe, monkeypatch, first):
    server = raw(ollama)
    with socket.create_server(("127.0.0.1", 0), backlog=0) as dead, socket.socket() as filler:
        address = dead.getsockname()
        if first == "refusing":
            dead.close()
        else:  # its one place in the accept queue taken: further SYNs go unanswered, as behind a dropping firewall
            filler.connect(address)
        answers = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address),
                   (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", server.port))]
        monkeypatch.setattr(socket, "getaddrinfo", lambda host, *args, **kwargs: answers)  # both clients ask it here
        result = probe(f"http://ollama.test:{server.port}", timeout=5.0)
    assert result.healthy, result.error
    assert server.paths  # and it was this server that answered


def test_a_name_whose_first_address_cannot_have_a_socket_is_reached_through_the_next(raw, probe, monkeypatch):
    # as `localhost` (::1, then 127.0.0.1) on a kernel without IPv6: socket(AF_INET6) itself fails
    server = raw(ollama)
    unmakeable = (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_UDP, "", ("::1", server.port, 0, 0))
    with pytest.raises(OSError):
        socket.socket(*unmakeable[:3]).close()
    answers = [unmakeable, (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", server.port))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *args, **kwargs: answers)
    result = probe(f"http://ollama.test:{server.port}", timeout=5.0)
    assert result.healthy, result.error
    assert server.paths


def test_endless_interim_answers_are_refused_at_the_head_cap(raw, probe):
    sent: list[int] = []

    def interim(path: str) -> Iterator[bytes]:
        while True:  # `100 Continue` heads for ever: each is small, together they are an endless head
            sent.append(1)
            yield b"HTTP/1.1 100 Continue\r\nX-Filler: " + b"a" * 1000 + b"\r\n\r\n"

    result = probe(raw(interim).url, timeout=20)
    assert (result.healthy, result.error) == (False, "not an Ollama server")  # refused, not read until the deadline


def test_localhost_is_probed_whichever_of_its_addresses_the_server_listens_on(raw, probe):
    server = raw(ollama)  # on 127.0.0.1 only: where `localhost` is ::1 first, that one refuses
    result = probe(f"http://localhost:{server.port}")
    assert result.healthy, result.error
    assert server.paths


@pytest.mark.parametrize("command", ["health", "ps"])
def test_a_hung_name_lookup_holds_a_thread_not_the_command(monkeypatch, command):
    release, asked = threading.Event(), threading.Event()

    def hung(host, *args, **kwargs):  # a resolver that does not answer (getaddrinfo takes no timeout)
        asked.set()
        release.wait(60)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hung)
    instances = [Instance(id="stuck", name="stuck", url="http://stuck.test:11434")]
    try:
        error = health.check(instances, timeout=0.5)[0].error if command == "health" \
            else health.loaded_models(instances, timeout=0.5)[0][1]
        assert asked.is_set() and not release.is_set()  # the lookup still hangs: the answer did not wait for it
        assert error == "timed out after 0.5 s"
    finally:
        release.set()


def test_an_ipv6_literal_is_reached_with_its_bracketed_host_header(sim, probe):
    server = sim.add(host="::1")
    result = probe(server.url)
    assert result.healthy, result.error
    port = server.url.rsplit(":", 1)[1]
    assert {r.headers.get("host") for r in server.requests} == {f"[::1]:{port}"}
