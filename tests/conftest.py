"""Shared fixtures: every test runs against its own registry and state directory."""

import errno
import os
import socket
import sys
from pathlib import Path

import pytest

from ollamactl.core.fleet import Fleet

# The suite runs as `.venv/bin/python -m pytest` without activating the venv: the programs the venv
# installed (litellm, ollamactl) are found on PATH as they are for a user who activated it.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

pytest_plugins = ["sim_fixtures", "hostile_server", "redis_fixtures"]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Point ollamactl at a private config file and state dir; never at the developer's own."""
    config = tmp_path / "config" / "instances.toml"
    state = tmp_path / "state"
    monkeypatch.setenv("OLLAMACTL_CONFIG", str(config))
    monkeypatch.setenv("OLLAMACTL_STATE_DIR", str(state))
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    monkeypatch.delenv("OLLAMACTL_STORE", raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    # `add` asks; no DNS query leaves a test
    monkeypatch.setattr("ollamactl.core.registry.lookup._resolve", fake_resolver)
    monkeypatch.setattr("ollamactl.core.registry.lookup._reverse", fake_reverse)  # `discover --add` names what it found
    monkeypatch.setattr(socket, "getaddrinfo", loopback_getaddrinfo)  # `add` probes what it registers:
    monkeypatch.setattr(socket.socket, "connect", loopback_connect)  # gpu1, 10.1.2.3 ... must stay unasked
    monkeypatch.setattr(socket.socket, "connect_ex", loopback_connect_ex)
    # the probes' thread client makes its sockets from _socket, whose C type no test can guard: here it
    # gets socket.py (the same sockets and lookups, through the guards above)
    monkeypatch.setattr("ollamactl.core.health.probe_threads._socket", socket)
    return {"config": config, "state": state}


_getaddrinfo, _connect, _connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex
_LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}


def _loopback(host) -> bool:
    import ipaddress

    if isinstance(host, bytes):  # the probes' thread client asks for ASCII names as bytes
        host = host.decode("ascii", "replace")
    if host is None or host in _LOOPBACK_NAMES or (isinstance(host, str) and host.endswith(".localhost")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_getaddrinfo(host, *args, **kwargs):
    """No test asks a DNS server: names other than loopback ones do not resolve."""
    if not _loopback(host):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (tests stay on loopback)")
    return _getaddrinfo(host, *args, **kwargs)


def loopback_connect(sock, address):
    """No test sends a packet beyond loopback (Unix sockets pass)."""
    if isinstance(address, tuple) and not _loopback(address[0]):
        raise OSError(errno.ENETUNREACH, "Network is unreachable (tests stay on loopback)")
    return _connect(sock, address)


def loopback_connect_ex(sock, address):
    """`loopback_connect` for a non-blocking connect (an error number, not an exception)."""
    if isinstance(address, tuple) and not _loopback(address[0]):
        return errno.ENETUNREACH
    return _connect_ex(sock, address)


def fake_resolver(host, port):
    """Names under .invalid (RFC 6761) do not exist; every other name resolves."""
    if host.endswith(".invalid"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 0))]


def fake_reverse(address):
    """127.0.0.2 is known as gpu-box.lan, 127.0.0.1 as localhost; no other address has a name."""
    import socket

    names = {"127.0.0.1": "localhost", "127.0.0.2": "gpu-box.lan"}
    if address not in names:
        raise socket.herror(1, "Unknown host")
    return names[address], [], [address]


class FakeClock:
    """`time.time()` for the code under test: now (real), then only what `advance` adds."""

    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake_clock(monkeypatch) -> FakeClock:
    """An injected clock for anything with a TTL: tests move it on instead of sleeping."""
    import time

    clock = FakeClock(time.time())
    monkeypatch.setattr(time, "time", clock)
    return clock


@pytest.fixture
def fleet(isolated_env) -> Fleet:
    """The test's fleet: its private registry and state, warnings kept in `fleet.warnings`."""
    return Fleet()
