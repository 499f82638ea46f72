"""Finding Ollama servers on the hosts and networks a user names (`ollamactl discover`). Never prints.

A target is a host name, an IP address (v4 or v6), HOST:PORT, [V6]:PORT, a URL, or a CIDR block.
Every address of a block is tried on every port asked for: first a TCP connect with a short
deadline (on a scanned network most addresses have nothing listening, and their cost is that
deadline), then, where something accepted, the health probe (`/api/version`, `/api/tags` and
`/api/ps` under one deadline: a socket that accepts and never answers costs one `timeout`). A
server counts as Ollama only when the probe does: a version, and a model list in Ollama's shape.

A fixed number of workers pull addresses from one lazy iterator, so a /16 costs no more memory than
a /30, and what was found is handed to `on_found` as it is found (an interrupted scan keeps it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ollamactl.core.errors import Said, UsageError
from ollamactl.core.registry.urls import DEFAULT_PORT, host_of, normalise_url

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from ollamactl.core.health.probe import HealthResult
    from ollamactl.core.health.probe_http import ProbeClient

WITHOUT_YES = 1 << 16  # addresses: a /16; a larger scan must be asked for (`yes`)
AT_MOST = 1 << 24  # addresses: a /8, about 18 hours at the default pace; beyond it, never
DEFAULT_CONCURRENCY = 256
DEFAULT_TIMEOUT = 2.0  # seconds a server that accepted may take to answer the probe
DEFAULT_CONNECT_TIMEOUT = 1.0  # seconds to accept a connection; a LAN host answers in milliseconds

OnProgress = Callable[[int, int], None]  # (addresses tried, addresses in all)


@dataclass(frozen=True)
class Target:
    """One target as the user wrote it, and what it stands for: hosts (addresses or names) and,
    unless the target named its own, the ports asked for."""

    text: str
    hosts: Sequence[str] | ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int | None = None  # the target's own port (HOST:PORT, a URL)
    url: str | None = None  # the target's own URL, kept as written (a path, https)

    @property
    def size(self) -> int:
        """How many addresses (or names) the target stands for."""
        if isinstance(self.hosts, _NETWORKS):
            return _host_count(self.hosts)
        return len(self.hosts)


@dataclass(frozen=True)
class Found:
    """An Ollama server that answered; `registered` is the id it is registered under (any spelling
    of its address), None for a new one."""

    url: str
    version: str
    models: tuple[str, ...]
    loaded: tuple[str, ...] | None  # None: the server does not say (no /api/ps)
    latency_ms: float | None
    registered: str | None = None

    def public(self) -> dict[str, object]:
        """The JSON form (`discover --json`)."""
        return {"url": self.url, "version": self.version, "models": list(self.models),
                "loaded": None if self.loaded is None else list(self.loaded),
                "registered": self.registered is not None, "instance": self.registered}


_NETWORKS = (ipaddress.IPv4Network, ipaddress.IPv6Network)


def _host_count(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> int:
    """len(network.hosts()) without listing them: a v4 block loses its network and broadcast
    addresses (not a /31 or /32), a v6 block its subnet-router anycast (not a /127 or /128)."""
    total = network.num_addresses
    if network.version == 4:
        return total - 2 if network.prefixlen < 31 else total
    return total - 1 if network.prefixlen < 127 else total


def check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"port {port!r} is out of range", "give a port from 1 to 65535")
    return port


def parse_target(text: str) -> Target:
    """`192.168.1.0/24`, `gpu1`, `gpu1:8080`, `10.0.0.5`, `[fe80::1]:8080`, `fe80::1`,
    `https://host/prefix` -> a Target; UsageError naming the target otherwise."""
    if not isinstance(text, str):
        raise UsageError(f"target {text!r} is not text", "give a host, HOST:PORT, a URL or a CIDR block")
    raw = text.strip()
    if not raw:
        raise UsageError("a target is empty", "give a host, HOST:PORT, a URL or a CIDR block such as 192.168.1.0/24")
    if "/" in raw and "://" not in raw:
        try:
            network = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise UsageError(f"target {raw!r} is not a CIDR block",
                             "write a network as ADDRESS/PREFIX, e.g. 192.168.1.0/24 or fd00::/120") from None
        return Target(raw, network)
    try:
        return _one_host(raw)
    except UsageError as bad:
        raise UsageError(f"target {raw!r} is not a host, HOST:PORT, URL or network ({bad.message})",
                         f"e.g. gpu1, gpu1:{DEFAULT_PORT}, 10.0.0.5, [fd00::5]:{DEFAULT_PORT}, http://gpu1:{DEFAULT_PORT}"
                             " or 10.0.0.0/24") from None


def _one_host(raw: str) -> Target:
    if "://" in raw:
        url = normalise_url(raw)
        return Target(raw, (host_of(url),), port=_port_of(url), url=url)
    if raw.startswith("[") or raw.count(":") > 1:  # [v6], [v6]:port, bare v6
        url = normalise_url(f"http://{raw}" if raw.startswith("[") else f"http://[{raw}]")
        return Target(raw, (host_of(url),), port=_port_of(url) if "]:" in raw else None)
    url = normalise_url(f"http://{raw}")  # a host name or an IPv4 address, with or without :PORT
    return Target(raw, (host_of(url),), port=_port_of(url) if ":" in raw else None)


def _port_of(url: str) -> int:
    return int(url.partition("://")[2].partition("/")[0].rpartition(":")[2])


def url_order(found: Found) -> tuple[int, int, str, int]:
    """Found servers in address order (10.0.0.9 before 10.0.0.10), names after addresses, then by port."""
    host = host_of(found.url)
    port = _port_of(found.url)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return (7, 0, host, port)
    return (address.version, int(address), "", port)


def _inside(host: str, blocks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether the address `host` (a name never is) lies in one of `blocks`."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in block for block in blocks if block.version == address.version)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Plan:
    """The targets and ports of one scan: how many addresses and probes, and the URLs, lazily."""

    def __init__(self, targets: Sequence[Target], ports: Sequence[int]):
        self.targets = list(targets)
        self.ports = list(dict.fromkeys(check_port(port) for port in ports)) or [DEFAULT_PORT]
        self.addresses = sum(target.size for target in self.targets)
        self.total = sum(target.size * (1 if target.port else len(self.ports)) for target in self.targets)

    def check_size(self, yes: bool) -> None:
        """Refuse (UsageError) a scan larger than a /16 unless `yes`, and one larger than a /8 always."""
        if self.addresses > AT_MOST:
            raise UsageError(f"the targets hold {self.addresses:,} addresses, more than a /8 ({AT_MOST:,})",
                             "scan smaller blocks, e.g. the /24s your servers are on")
        if self.addresses > WITHOUT_YES and not yes:
            raise UsageError(f"the targets hold {self.addresses:,} addresses, more than a /16 ({WITHOUT_YES:,})",
                             Said("name a smaller block, or pass {yes=True} if you mean to scan them all"))

    def urls(self) -> Iterator[str | None]:
        """Each URL to try, in the order the targets were given; None for one given before (a host
        twice, or inside a block already named), so that `total` counts what is yielded."""
        blocks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        singles: set[str] = set()
        for target in self.targets:
            if isinstance(target.hosts, _NETWORKS):
                for address in target.hosts.hosts():
                    earlier = any(address in block for block in blocks if block.version == address.version)
                    for port in self.ports:
                        url = _url(str(address), port)
                        yield None if earlier or url in singles else url
                blocks.append(target.hosts)
                continue
            for host in target.hosts:
                for url in [target.url] if target.url else [_url(host, port) for port in
                                                           ([target.port] if target.port else self.ports)]:
                    yield None if url in singles or _inside(host, blocks) else url
                    singles.add(url)


async def scan(plan: Plan, *, timeout: float, connect_timeout: float, concurrency: int,
               on_found: Callable[[HealthResult], None], on_progress: OnProgress | None = None) -> None:
    """Try every URL of `plan`, `concurrency` at a time; `on_found` gets each probe that answered
    like Ollama, `on_progress` the count after each URL."""
    import asyncio

    from ollamactl.core.health import probe as health
    from ollamactl.core.registry.instances import Instance

    urls = plan.urls()
    workers = health.probe_slots(concurrency, max(1, plan.total))
    tried = 0

    async def work(client: ProbeClient) -> None:
        nonlocal tried
        for url in urls:  # one iterator shared by every worker: each URL is taken once
            if url is not None and await _accepts(url, connect_timeout):
                result = await health.probe(client, Instance(id=url, name=url, url=url), timeout)
                if result.healthy:
                    on_found(result)
            tried += 1
            if on_progress is not None:
                on_progress(tried, plan.total)

    async with health.probe_client(workers) as client:
        await asyncio.gather(*(work(client) for _ in range(workers)))


async def _accepts(url: str, deadline: float) -> bool:
    """Whether something accepts a TCP connection at `url`'s host and port within `deadline`."""
    import asyncio

    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host_of(url), _port_of(url)), deadline)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True


def found_from(result: HealthResult, registered: str | None) -> Found:
    return Found(url=result.url, version=result.version or "", models=tuple(m["name"] for m in result.models),
                 loaded=None if result.loaded is None else tuple(result.loaded), latency_ms=result.latency_ms,
                 registered=registered)


def suggest_name(url: str, taken: set[str], reverse: Callable[[str], str | None]) -> str:
    """A name for a found server: its host name (`reverse` looks an address up), else its address,
    with `-PORT` for a port other than DEFAULT_PORT, and `-2`, `-3`, ... if the name is taken."""
    host, port = host_of(url), _port_of(url)
    try:
        ipaddress.ip_address(host)
        base = reverse(host) or host
    except ValueError:
        base = host
    if port != DEFAULT_PORT:
        base = f"{base}-{port}"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}-{number}", number + 1
    return name

