"""Hold a test's child process (LiteLLM's Router or proxy) to loopback: every connection or name
lookup elsewhere is refused and recorded, so a test can assert that nothing left the machine.

Importing it installs the guard. `BLOCKED` lists what was refused; with LOOPBACK_GUARD_LOG set
(the proxy, which has no way to report back), each refusal is also appended to that file.
`CONNECTS` lists the loopback ports connected to, for a probe that wants to know where it went.
"""

from __future__ import annotations

import ipaddress
import os
import socket

BLOCKED: list[str] = []
CONNECTS: list[int] = []
_LOG = os.environ.get("LOOPBACK_GUARD_LOG")
_connect = socket.socket.connect
_getaddrinfo = socket.getaddrinfo


def _loopback(host: object) -> bool:
    if host in ("localhost", "127.0.0.1", "::1"):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


def _refuse(what: str) -> None:
    BLOCKED.append(what)
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(what + "\n")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if isinstance(address, tuple) and not _loopback(address[0]):
        _refuse(f"connect {address[0]}")
        raise OSError("the test allows loopback only")
    if isinstance(address, tuple):
        CONNECTS.append(address[1])
    return _connect(self, address)  # type: ignore[arg-type]


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
    if host is not None and not _loopback(host):
        _refuse(f"lookup {host}")
        raise socket.gaierror(socket.EAI_NONAME, "the test allows loopback only")
    return _getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]
