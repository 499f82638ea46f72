"""The transport of `run`'s client when every instance it may call speaks plain http: no TLS context.

httpx builds an SSLContext for every transport, `verify=False` included, and the first one in a
process costs OpenSSL's set-up (~2 ms here, a fifth of what `run` may add before its first token).
httpcore itself builds one only when it connects to an https origin, so a connection pool that is
given none needs none for http:// URLs. Should an https URL ever reach this transport, httpcore
builds its default context there, which verifies certificates: nothing is sent unverified.
Clients with an https instance keep httpx's own transport (its verification, certifi, as before).
"""

from __future__ import annotations

import httpcore
import httpx


class PlainTransport(httpx.HTTPTransport):
    """httpx's transport (its request handling and error mapping) over a pool without a TLS context."""

    def __init__(self, limits: httpx.Limits) -> None:  # not super().__init__: that builds the context
        self._pool = httpcore.ConnectionPool(max_connections=limits.max_connections,
                                             max_keepalive_connections=limits.max_keepalive_connections,
                                             keepalive_expiry=limits.keepalive_expiry)
