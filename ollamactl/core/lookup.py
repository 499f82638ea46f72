"""Whether an instance's host name resolves, for `add`'s early warning (a typo in a host name).

The system resolver is asked on a daemon thread with a short deadline: a slow or absent resolver
means "don't know", never a wait. IP literals and loopback names are not looked up.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

from ollamactl.core.urls import server_key

_resolve = socket.getaddrinfo  # the system resolver (tests put a stand-in here: no DNS queries leave them)


def unresolvable_host(url: str, timeout: float = 1.0) -> str | None:
    """The host of the normalised `url` when the resolver says it does not exist, else None."""
    host = url.partition("://")[2].partition("/")[0].rpartition(":")[0].strip("[]")
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
