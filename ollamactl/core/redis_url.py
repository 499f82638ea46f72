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

from urllib.parse import unquote, unquote_plus, urlsplit

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
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # a bracketed host that is not IPv6
            raise ValueError(f"{self.shown}: {exc}") from None
        self.scheme = parts.scheme.lower()
        if self.scheme not in SCHEMES:
            raise ValueError(f"{self.shown}: the scheme must be redis://, rediss:// or unix://")
        options = _options(parts.query, self.shown)
        self.prefix = options.get("prefix", DEFAULT_PREFIX)
        self.tls = self.scheme == "rediss"
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        self.username = unquote(user) or options.get("username") or None
        self.password = unquote(password) if colon else options.get("password")
        path = unquote(parts.path)
        if self.scheme == "unix":
            if hostport or not path.startswith("/"):
                raise ValueError(f"{self.shown}: a unix:// URL names the socket's absolute path, as in"
                                 " unix:///run/redis/redis.sock")
            self.host, self.port, self.path = None, None, path
            db = options.get("db", "0")
        else:
            try:
                self.host, self.port = parts.hostname, parts.port or DEFAULT_PORT
            except ValueError:
                raise ValueError(f"{self.shown}: the port must be a number from 1 to 65535") from None
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


def _options(query: str, where: str) -> dict[str, str]:
    options = {}
    for piece in filter(None, query.split("&")):
        key, _, value = piece.partition("=")
        key = unquote_plus(key)
        if key not in OPTIONS:
            raise ValueError(f"{where}: unknown option {key!r} (known: {', '.join(OPTIONS)})")
        options[key] = unquote_plus(value)
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
    scheme, sep, rest = url.partition("://")
    if not sep:
        return MASK if "@" in url or "password" in url.lower() else url  # not a URL: nothing to parse apart
    rest, _, _ = rest.partition("#")
    rest, question, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if userinfo:  # a lone word may be meant as the password (redis-cli reads it so): hidden too
        userinfo = userinfo.partition(":")[0] + ":" + MASK if ":" in userinfo else MASK
    kept = []
    for piece in filter(None, query.split("&")):
        key = unquote_plus(piece.partition("=")[0]).lower()
        if key == "password":
            piece = piece.partition("=")[0] + "=" + MASK
        if key != "prefix":
            kept.append(piece)
    return f"{scheme}://{userinfo}{at}{hostport}{slash}{path}" + ("?" + "&".join(kept) if kept else "")
