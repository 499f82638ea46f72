"""Pytest fixtures for a real redis-server on a free loopback port (a plugin named in conftest.py).

The server is Debian's `redis-server` (scripts/install_test_deps.sh installs it); when it is
missing the test fails and says so, it does not skip. `redis_server_with` starts one with options:
a unix socket beside the TCP port, a password (`requirepass`), a TLS port with a self-signed
certificate for 127.0.0.1 (made by the `openssl` command).
"""

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


class RedisServer:
    """One redis-server with its data in a temp dir; `url` names database 0 of it (over TCP), and
    `unix_url` its socket when started with `unix=True`, `tls_url` its TLS port (trusting
    `certificate`) when started with `tls=True`."""

    def __init__(self, directory: Path, unix: bool = False, password: str | None = None, tls: bool = False):
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not installed: run scripts/install_test_deps.sh"
                        " (or install the Debian package redis-server)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        directory.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", "",
                   "--appendonly", "no", "--logfile", str(directory / "redis.log")]
        self._socket_dir = None
        if unix:  # a short directory: a socket path is limited to ~107 bytes, test paths are long
            self._socket_dir = tempfile.mkdtemp(prefix="redis-")
            self.socket_path = f"{self._socket_dir}/redis.sock"
            self.unix_url = f"unix://{self.socket_path}"
            options += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        if password is not None:
            options += ["--requirepass", password]
        if tls:
            options += self._tls(directory)
        self.process = subprocess.Popen([executable, *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")) and (not unix or Path(self.socket_path)
                                                                             .exists()):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start on port {self.port}: see {directory / 'redis.log'}")
            time.sleep(0.05)

    def _tls(self, directory: Path) -> list[str]:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.fail("openssl is not installed: run scripts/install_test_deps.sh")
        self.certificate, key = directory / "cert.pem", directory / "key.pem"
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                        str(self.certificate)], check=True, capture_output=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.tls_url = f"rediss://127.0.0.1:{port}/0"
        return ["--tls-port", str(port), "--tls-cert-file", str(self.certificate), "--tls-key-file", str(key),
                "--tls-ca-cert-file", str(self.certificate), "--tls-auth-clients", "no"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)


def looking_in(**options):
    """redis-py on a test's server, to see what ollamactl stored there (options as redis.Redis takes
    them). Imported here, not when tests are collected: it adds ~18 MB to every worker, and the
    peak-memory tests (test_bounded_reads.py) count the worker's peak in their child's."""
    import redis

    return redis.Redis(**options)


@pytest.fixture
def redis_server_with(tmp_path) -> Iterator[Callable[..., RedisServer]]:
    """Start redis-servers with options (`unix=True`, `password="..."`, `tls=True`); all stopped at teardown."""
    servers: list[RedisServer] = []

    def start(**options) -> RedisServer:
        servers.append(RedisServer(tmp_path / f"redis{len(servers)}", **options))
        return servers[-1]

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def redis_server(redis_server_with) -> RedisServer:
    return redis_server_with()


@pytest.fixture
def redis_store(redis_server, monkeypatch) -> RedisServer:
    """The test's fleet keeps its state in the Redis server (OLLAMACTL_STORE), subprocesses too."""
    monkeypatch.setenv("OLLAMACTL_STORE", redis_server.url)
    return redis_server
