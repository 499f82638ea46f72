"""The Redis store's URL: what it may say, and how it is shown (never with its password).

    redis://[[username]:password@]host[:port][/db][?option=value&...]   TCP, port 6379, database 0
    rediss://...                                                        the same over TLS
    unix://[[username]:password@]/path/to/redis.sock[?option=value&...] a unix socket

Options: `prefix` (the key prefix, default `ollamactl:`), `db` (the database; a path `/N` says the
same for TCP), `password` and `username` (instead of `user:password@`), `timeout` (seconds for
each store operation, all its I/O included; default 2). Percent-escapes are decoded in the user,
password and options. `shown(url)` is the URL for messages: the password, in whichever place it
was given, becomes `***`, and the prefix goes (it is named separately).
"""

from __future__ import annotations

import re

SCHEMES = ("redis", "rediss", "unix")
OPTIONS = ("prefix", "db", "password", "username", "timeout")
DEFAULT_PREFIX = "ollamactl:"
DEFAULT_PORT = 6379
DEFAULT_TIMEOUT_S = 2.0
MAX_TIMEOUT_S = 60.0
MASK = "***"


class Target:
    """Where a Redis store is and how to log in, parsed from its URL (`parse`)."""

    def __init__(self, url: str) -> None:
        self.shown = shown(url)
        scheme, userinfo, hostport, path, query = _split(url)
        self.scheme = scheme.lower()
        if self.scheme not in SCHEMES:
            raise ValueError(f"{self.shown}: the scheme must be redis://, rediss:// or unix://")
        options = _options(query, self.shown)
        self.prefix = options.get("prefix", DEFAULT_PREFIX)
        self.tls = self.scheme == "rediss"
        user, colon, password = userinfo.partition(":")
        self.username = _unquote(user) or options.get("username") or None
        self.password = _unquote(password) if colon else options.get("password")
        path = _unquote(path)
        self.host: str | None
        self.port: int | None
        self.path: str | None
        if self.scheme == "unix":
            if hostport or not path.startswith("/"):
                raise ValueError(f"{self.shown}: a unix:// URL names the socket's absolute path, as in"
                                 " unix:///run/redis/redis.sock")
            self.host, self.port, self.path = None, None, path
            db = options.get("db", "0")
        else:
            self.host, self.port = _host_port(hostport, self.shown)
            if not self.host:
                raise ValueError(f"{self.shown}: the URL names no host, as in redis://host:6379/0")
            self.path = None
            db = options.get("db", path.strip("/") or "0")
        if not db.isdigit() or not db.isascii():
            raise ValueError(f"{self.shown}: the database must be a number, as in redis://host:6379/0, got {db!r}")
        self.db = int(db)
        self.timeout = _seconds(options.get("timeout"), self.shown)

    @property
    def address(self) -> str:
        """Where to connect, in words (no password)."""
        return self.path if self.path is not None else f"{self.host}:{self.port}"


def _split(url: str) -> tuple[str, str, str, str, str]:
    """(scheme, userinfo, host[:port], path, query) of `url`, the fragment dropped (urllib.parse is
    not imported for this: it is a fifth of what the store adds to `pick`)."""
    scheme, _, rest = url.partition("://")
    rest = rest.partition("#")[0]
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, _, hostport = netloc.rpartition("@")
    return scheme, userinfo, hostport, slash + path, query


def _host_port(hostport: str, where: str) -> tuple[str, int]:
    host, port = hostport, ""
    if hostport.startswith("["):  # [IPv6]:port
        host, bracket, port = hostport[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise ValueError(f"{where}: an IPv6 address goes in brackets, as in redis://[::1]:6379/0")
        port = port[1:]
    elif ":" in hostport:
        host, _, port = hostport.rpartition(":")
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{where}: the port must be a number from 1 to 65535")
    return _unquote(host).lower(), int(port) if port else DEFAULT_PORT


def _unquote(text: str, plus: bool = False) -> str:
    """Percent-escapes decoded (UTF-8; `+` is a space in an option when `plus`)."""
    if plus:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    raw = re.sub(rb"%([0-9A-Fa-f]{2})", lambda match: bytes.fromhex(match[1].decode()), text.encode("utf-8"))
    return raw.decode("utf-8", "replace")


def _options(query: str, where: str) -> dict[str, str]:
    options = {}
    for piece in filter(None, query.split("&")):
        key, _, value = piece.partition("=")
        key = _unquote(key, plus=True)
        if key not in OPTIONS:
            raise ValueError(f"{where}: unknown option {key!r} (known: {', '.join(OPTIONS)})")
        options[key] = _unquote(value, plus=True)
    return options


def _seconds(value: str | None, where: str) -> float:
    if value is None:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= MAX_TIMEOUT_S:  # nan fails too
        raise ValueError(f"{where}: timeout must be seconds above 0 and at most {MAX_TIMEOUT_S:g}, got {value!r}")
    return seconds


def parse(url: str) -> Target:
    """The target `url` names; ValueError (saying why, the URL shown masked) when it names none."""
    return Target(url)


def shown(url: str) -> str:
    """`url` for messages: a password given as `user:password@` or `?password=` replaced by `***`,
    the `prefix` option left out; the rest as written."""
    if "://" not in url:
        return MASK if "@" in url or "password" in url.lower() else url  # not a URL: nothing to parse apart
    scheme, userinfo, hostport, path, query = _split(url)
    if userinfo:  # a lone word may be meant as the password (redis-cli reads it so): hidden too
        userinfo = (userinfo.partition(":")[0] + ":" + MASK if ":" in userinfo else MASK) + "@"
    kept = []
    for piece in filter(None, query.split("&")):
        key = _unquote(piece.partition("=")[0], plus=True).lower()
        if key == "password":
            piece = piece.partition("=")[0] + "=" + MASK
        if key != "prefix":
            kept.append(piece)
    return f"{scheme}://{userinfo}{hostport}{path}" + ("?" + "&".join(kept) if kept else "")
