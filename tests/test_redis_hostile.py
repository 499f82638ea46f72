"""A Redis that misbehaves (trickles its answer, claims a 2 GB reply, nests without end, answers
nonsense) costs a command one store deadline, then the local state file with one warning: never a
hang, a bloat or a traceback. Fake servers on loopback count what they managed to send, which
proves where the client stopped without timing it."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from cli_helpers import ok

TRICKLE_BYTES = 400  # one per TRICKLE_INTERVAL_S: 8 s in all, far past the 0.3 s deadline the tests set
TRICKLE_INTERVAL_S = 0.02
FLOOD_BYTES = 64 * 1024 * 1024


class FakeRedis:
    """A loopback server that answers every connection's first command with `behaviour(send)`."""

    def __init__(self, behaviour: Callable[[Callable[[bytes], None]], None]):
        self.behaviour = behaviour
        self.sent = 0  # bytes the client took before it hung up (or all of them)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)  # the command (whatever it is)
                    self.behaviour(lambda data, conn=conn: self._send(conn, data))
                except (OSError, StopIteration):  # the client hung up: the point of the test
                    pass

    def _send(self, conn: socket.socket, data: bytes) -> None:
        if self.stopping.is_set():
            raise StopIteration
        conn.sendall(data)
        self.sent += len(data)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.listener.close()


def trickle(send: Callable[[bytes], None]) -> None:
    send(b"+")
    for _ in range(TRICKLE_BYTES - 1):
        time.sleep(TRICKLE_INTERVAL_S)
        send(b"O")


def flood(header: bytes, chunk: bytes) -> Callable[[Callable[[bytes], None]], None]:
    def behaviour(send: Callable[[bytes], None]) -> None:
        send(header)
        for _ in range(FLOOD_BYTES // len(chunk)):
            send(chunk)

    return behaviour


BEHAVIOURS = {
    "trickle": trickle,
    "huge-string": flood(b"$2000000000\r\n", b"x" * 65536),
    "huge-array": flood(b"*2000000000\r\n", b":1\r\n" * 16384),
    "endless-nesting": flood(b"", b"*1\r\n" * 16384),
    "nonsense": lambda send: send(b":5\r\n" * 64),
}
SAID = {"trickle": "no complete answer within 0.3 s", "huge-string": "a string of 2000000000 bytes",
        "huge-array": "2000000000 values", "endless-nesting": "nests deeper", "nonsense": "unexpected reply"}


@pytest.fixture
def fake_redis() -> Iterator[Callable[[str], FakeRedis]]:
    servers: list[FakeRedis] = []

    def start(name: str) -> FakeRedis:
        servers.append(FakeRedis(BEHAVIOURS[name]))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("command", [("pick",), ("health",), ("exec", "--", sys.executable, "-c", "pass")])
@pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
def test_a_hostile_redis_costs_one_deadline_then_the_local_file_with_one_warning(fake_redis, sim, monkeypatch,
                                                                                 behaviour, command):
    for _ in range(2):
        ok("add", sim.add().url)
    ok("health")  # the local state file has a fresh cache: the fallback answers at once
    server = fake_redis(behaviour)
    monkeypatch.setenv("OLLAMACTL_STORE", f"redis://127.0.0.1:{server.port}/0?timeout=0.3")
    done = subprocess.run([sys.executable, "-m", "ollamactl", *command], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "the Redis store is unavailable" in warnings[0], done.stderr
    assert SAID[behaviour] in warnings[0]
    server.stop()
    if behaviour == "trickle":  # one deadline for the whole answer, not one per read: it gave up mid-way
        assert server.sent < TRICKLE_BYTES
    elif behaviour != "nonsense":  # refused at the claim, not after reading (or trying to hold) it
        assert server.sent < FLOOD_BYTES // 4


def test_a_host_name_idna_refuses_is_one_warning_and_a_loopback_pick_does_not_load_idna(fake_redis, sim,
                                                                                         monkeypatch):
    ok("add", sim.add().url)
    ok("health")
    # an empty label in a non-ASCII name: the idna codec refuses it before any lookup (no traffic)
    monkeypatch.setenv("OLLAMACTL_STORE", "redis://bücher..example:6379/0?timeout=0.3")
    done = subprocess.run([sys.executable, "-m", "ollamactl", "pick"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "not a usable host name" in done.stderr
    server = fake_redis("nonsense")
    monkeypatch.setenv("OLLAMACTL_STORE", f"redis://127.0.0.1:{server.port}/0?timeout=0.3")
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ollamactl", "pick"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ollamactl.core.state.resp" in done.stderr  # it did connect to the Redis store
    assert "encodings.idna" not in done.stderr and "unicodedata" not in done.stderr
