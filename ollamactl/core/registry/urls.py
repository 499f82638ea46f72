"""Instance URLs: OLLAMA_HOST-style normalisation and the ids derived from them.

`normalise_url` is idempotent and raises `UsageError` (never anything else) for bad text, so
every URL stored in the registry has one canonical form: `scheme://host:port[/path]`. One address
has one spelling: an IPv4 address written as the system resolver also reads it (`127.1`,
`2130706433`, `0x7f000001`, `0177.0.0.1`: inet_aton's forms) or as an IPv4-mapped IPv6 address
(`[::ffff:127.0.0.1]`) becomes its dotted quad; host names keep their spelling (lower case).
"""

from __future__ import annotations

import functools
import re

from ollamactl.core.errors import Said, UsageError
from ollamactl.core.registry import DEFAULT_PORT

SCHEME_PORTS = {"http": 80, "https": 443}
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
_PATH = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@functools.lru_cache(maxsize=4096)  # pure; a registry edit validates every instance's URL more than once
def normalise_url(text: str) -> str:
    """`gpu1` -> `http://gpu1:DEFAULT_PORT`; `https://h/p/` -> `https://h:443/p`; `0.0.0.0` -> 127.0.0.1."""
    raw = text.strip()
    if not raw:
        raise UsageError("the URL is empty",
                         f"give a host such as gpu1, gpu1:{DEFAULT_PORT} or http://gpu1:{DEFAULT_PORT}")
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "", raw
    userinfo, at, _ = rest.partition("/")[0].rpartition("@")
    if at:  # checked first: no other message may echo a password (which may hold spaces, '?' or '#')
        shown = f"{scheme}{sep}***@{rest[len(userinfo) + 1:]}"
        raise UsageError(f"URL {shown!r} carries credentials",
                         Said("remove them and use {api_key_env=VAR} or {api_key}"))
    if any(ch.isspace() or not ch.isprintable() for ch in raw):
        raise UsageError(f"URL {raw!r} contains spaces or control characters", "remove them")
    if sep:
        scheme = scheme.lower()
        if scheme not in SCHEME_PORTS:
            raise UsageError(f"unsupported scheme {scheme!r} in {raw!r}", "use http:// or https://")
        default_port = SCHEME_PORTS[scheme]
    else:
        scheme, default_port = "http", DEFAULT_PORT
    if "?" in rest or "#" in rest:
        raise UsageError(f"URL {raw!r} has a query or fragment", "give only scheme, host, port and path")
    authority, slash, path = rest.partition("/")
    host, port = _split_authority(authority, raw, default_port)
    path = _normalise_path(path if slash else "", raw)
    return f"{scheme}://{host}:{port}{path}"


def _split_authority(authority: str, raw: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise UsageError(f"unclosed '[' in {raw!r}", f"write IPv6 addresses as [::1]:{DEFAULT_PORT}")
        host = _ipv6_host(authority[1:end], raw)
        port_text = authority[end + 1 :]
        if port_text and not port_text.startswith(":"):
            raise UsageError(f"unexpected {port_text!r} after the IPv6 address in {raw!r}", "use [addr]:port")
        port_text = port_text[1:] if port_text else ""
    else:
        if authority.count(":") > 1:
            raise UsageError(f"{raw!r} looks like a bare IPv6 address", f"put it in brackets: [::1]:{DEFAULT_PORT}")
        host, _, port_text = authority.partition(":")
        if not host:
            raise UsageError(f"no host in URL {raw!r}", "give a host such as gpu1 or 192.168.1.20")
        host = host.lower()
        if not _HOSTNAME.match(host):
            raise UsageError(f"invalid host {host!r} in {raw!r}", "use a hostname or an IP address")
        host = _ipv4_host(host.rstrip("."), raw)
        if not authority.partition(":")[1]:
            return host, default_port
    return host, _port(port_text, raw, default_port)


def _ipv6_host(address: str, raw: str) -> str:
    import ipaddress

    try:
        parsed = ipaddress.IPv6Address(address)
    except ValueError:
        raise UsageError(f"invalid IPv6 address {address!r} in {raw!r}", f"write it as [::1]:{DEFAULT_PORT}") from None
    if parsed.is_unspecified:
        parsed = ipaddress.IPv6Address("::1")
    if parsed.ipv4_mapped is not None:  # the IPv4 server itself: one address, one spelling
        return _ipv4_host(str(parsed.ipv4_mapped), raw)
    return f"[{parsed.compressed}]"


_NUMBER = re.compile(r"^(?:0[xX][0-9a-fA-F]+|[0-9]+)$")


def _ipv4_host(host: str, raw: str) -> str:
    """A host that is a number in inet_aton's sense (1-4 parts: decimal, 0x hex or 0 octal; the last
    part fills the remaining bytes) as its dotted quad; other hosts as given. 0.0.0.0 (a bind
    address, not a destination) is 127.0.0.1."""
    parts = host.split(".")
    if not all(_NUMBER.match(part) for part in parts):
        return host
    if len(parts) > 4:
        raise UsageError(f"invalid IPv4 address {host!r} in {raw!r}", "write it as four numbers: 192.168.1.20")
    values = []
    for part in parts:
        if part[:2].lower() == "0x":
            values.append(int(part[2:], 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                raise UsageError(f"invalid IPv4 address {host!r} in {raw!r}",
                                 f"{part!r} is octal to the resolver (leading 0); write it without the 0")
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *leading, last = values
    room = 8 * (4 - len(leading))
    if any(value > 255 for value in leading) or last >= 1 << room:
        raise UsageError(f"invalid IPv4 address {host!r} in {raw!r}", "write it as four numbers from 0 to 255")
    number = sum(value << (8 * (3 - index)) for index, value in enumerate(leading)) + last
    quad = ".".join(str(number >> shift & 255) for shift in (24, 16, 8, 0))
    return "127.0.0.1" if quad == "0.0.0.0" else quad


def respelled_host(text: str) -> tuple[str, str] | None:
    """(as typed, as stored) when `normalise_url(text)` changed the host beyond letter case and a
    trailing dot: a numeric IPv4 spelling, a mapped IPv6 address, 0.0.0.0; else None."""
    stored = normalise_url(text).partition("://")[2].partition("/")[0].rpartition(":")[0]
    rest = text.strip().partition("://")
    authority = (rest[2] if rest[1] else rest[0]).partition("/")[0]
    typed = authority.partition("]")[0] + "]" if authority.startswith("[") else authority.partition(":")[0]
    if typed.lower().rstrip(".") == stored or typed.startswith("[") and stored.startswith("["):
        return None
    return typed, stored


def _port(port_text: str, raw: str, default_port: int) -> int:
    if port_text == "":
        return default_port
    if not port_text.isascii() or not port_text.isdigit():
        raise UsageError(f"port {port_text!r} in {raw!r} is not a number", "use a port from 1 to 65535")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port} in {raw!r} is out of range", "use a port from 1 to 65535")
    return port


def _normalise_path(path: str, raw: str) -> str:
    segments = [segment for segment in path.split("/") if segment]
    if not _PATH.match(path) or any(segment in (".", "..") for segment in segments):
        raise UsageError(f"invalid path {('/' + path)!r} in {raw!r}", "use a plain prefix such as /ollama")
    return "".join(f"/{segment}" for segment in segments)


_API_SEGMENTS = ("api", "v1")  # Ollama's own API and its OpenAI-compatible one: ollamactl adds these


def without_api_path(url: str) -> tuple[str, str | None]:
    """(`url` without a path from `/api` or `/v1` on, the part dropped or None): a pasted endpoint
    such as `http://h:8080/api/generate` is the server at `http://h:8080` (every request adds its
    own /api/... path, so a kept /api would send them to /api/api/...)."""
    base, slash, path = url.partition("://")[2].partition("/")
    segments = path.split("/") if slash else []
    for index, segment in enumerate(segments):
        if segment in _API_SEGMENTS:
            kept = "".join(f"/{s}" for s in segments[:index])
            return f"{url.partition('://')[0]}://{base}{kept}", "/" + "/".join(segments[index:])
    return url, None


# What `localhost` stands for. Other 127.x addresses are hosts of their own: a server bound to
# 127.0.0.2 does not answer on 127.0.0.1 (multi-host tests and `discover` rely on it).
_LOOPBACK_NAMES = ("localhost", "ip6-localhost", "ip6-loopback", "[::1]", "127.0.0.1")


def server_key(url: str) -> str:
    """What makes two normalised URLs the same server: every spelling of localhost (`localhost`,
    `127.0.0.1`, `[::1]`) is one host; scheme, port and path must match too."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    host, _, port = authority.rpartition(":")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        host = "loopback"
    return f"{scheme}://{host}:{port}{slash}{path}"


def host_of(url: str) -> str:
    """The host of a normalised `url`, brackets off: `http://[::1]:8080` -> `::1`; `http://gpu1:8080/x` -> `gpu1`."""
    return url.partition("://")[2].partition("/")[0].rpartition(":")[0].strip("[]")


def derive_id(url: str, taken: set[str]) -> str:
    """A readable unique id from a normalised URL: `http://gpu1:8080` -> `gpu1-8080`."""
    rest = url.partition("://")[2]
    authority, _, path = rest.partition("/")
    host, _, port = authority.rpartition(":")
    if host.startswith("["):
        host = "ipv6-" + host.strip("[]")
    parts = [host, port] + path.split("/")
    base = "-".join(filter(None, (re.sub(r"[^A-Za-z0-9]+", "-", part).strip("-") for part in parts)))
    base = base[:60].strip("-") or "instance"
    candidate, suffix = base, 2
    while candidate in taken:
        candidate, suffix = f"{base}-{suffix}", suffix + 1
    return candidate


def validate_id(instance_id: str) -> str:
    if not _ID.match(instance_id):
        raise UsageError(
            f"invalid id {instance_id!r}",
            "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return instance_id
