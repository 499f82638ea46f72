"""Asking the system resolver, never for long: whether an instance's host name resolves (`add`'s
early warning for a typo) and which names found servers' addresses have (`discover --add`).

The resolver is asked on daemon threads with a short deadline: a slow or absent resolver means
"don't know", never a wait. IP literals and loopback names are not looked up forwards.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

from ollamactl.core.registry.urls import host_of, server_key

_resolve = socket.getaddrinfo  # the system resolver (tests put stand-ins here: no DNS queries leave them)
_reverse = socket.gethostbyaddr


def unresolvable_host(url: str, timeout: float = 1.0) -> str | None:
    """The host of the normalised `url` when the resolver says it does not exist, else None."""
    host = host_of(url)
    if "://loopback:" in server_key(url):
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    outcome: list[bool] = []

    def ask() -> None:
        try:
            _resolve(host, None)
            outcome.append(True)
        except socket.gaierror as error:
            outcome.append(error.errno not in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)))
        except OSError:
            outcome.append(True)  # some other trouble: not a verdict on the name

    thread = threading.Thread(target=ask, name="ollamactl-lookup", daemon=True)
    thread.start()
    thread.join(timeout)
    return host if outcome == [False] else None


def host_names(addresses: list[str], timeout: float = 1.0) -> dict[str, str]:
    """{address: the host name it is known by (reverse DNS, /etc/hosts)} for those of `addresses`
    the resolver names within `timeout` (asked all at once); the others are left out."""
    names: dict[str, str] = {}

    def ask(address: str) -> None:
        try:
            name = _reverse(address)[0].rstrip(".")
        except (OSError, UnicodeError):
            return
        if name and name.isprintable() and len(name) <= 253 and not any(ch.isspace() for ch in name):
            names[address] = name

    threads = [threading.Thread(target=ask, args=(address,), name="ollamactl-lookup", daemon=True)
               for address in dict.fromkeys(addresses)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(names)
