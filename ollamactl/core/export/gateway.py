"""The pools behind an nginx or HAProxy export: one gateway, routed by path.

Chat and embedding instances go into separate pools (`both` instances into both); the embedding
paths go to the embedding pool and everything else to the chat pool. When one of the two would be
empty or both would be the same (or `--type` asks for one kind), a single pool takes every path.
Within a path's pool, a model that only some of its enabled servers hold (by the health cache) gets
a pool of its own, those servers (ModelRoute): the engine reads the model from the request body
and sends it there, so it never reaches a server without it; other models go to the whole pool.

Pure: registry instances + the health cache in, pools + warnings out. Rules (module docstring of
export.py): disabled instances only with `include_all`; unhealthy and never-checked ones are in,
with a note and a warning saying what the engine does about them; https and path-prefixed URLs
are left out (upstream servers carry neither); a keyed instance is admitted only where the engine
can give it its key alone (`key_problem` says why not), through a "key hop": an internal
listener that adds that instance's Authorization header and forwards to it, so the pools never
carry a key and clients' own Authorization headers are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ollamactl.core.errors import Said
from ollamactl.core.export.common import (
    Options,
    cache_entry,
    comment_safe,
    eligible,
    is_embedding_model,
    key_variable_of,
    listen_warnings,
    model_list,
    nothing_to_export,
    serves_model,
    split_listen,
)
from ollamactl.core.registry.instances import Instance
from ollamactl.model_names import normalise_model

UPSTREAM = "ollama"
# How often HAProxy checks a server, and how long nginx rests one after failures: a server that
# recovers takes requests again (a backup tier hands them back to tier 0) within this interval.
CHECK_INTERVAL_S = 2
EMBEDDING_PATHS = ("/api/embed", "/api/embeddings", "/v1/embeddings")
KINDS = ("chat", "embedding")
SAFE_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}")


@dataclass(frozen=True)
class Server:
    """One instance in a pool."""

    instance: Instance
    address: str  # host:port
    note: str  # for the config comment: "", "disabled in ollamactl", "unhealthy at its last check", ...
    key_variable: str | None  # the env var holding its key (None: no key)

    @property
    def hop(self) -> str:
        return hop_name(self.instance)


def hop_name(instance: Instance) -> str:
    """The name of a keyed instance's key hop (upstream, backend, variable)."""
    return "ollama_key_" + re.sub(r"[^A-Za-z0-9]+", "_", instance.id).strip("_")


@dataclass(frozen=True)
class ModelRoute:
    """Requests for `model` on the paths of pool `via` go to pool `pool`: the servers holding it."""

    via: str
    model: str  # normalised: `qwen3:4b`, `llama3.2:latest`
    pool: str
    servers: list[Server]

    @property
    def names(self) -> list[str]:
        """How a client may name the model: `qwen3:4b`; `llama3.2` or `llama3.2:latest`."""
        short = self.model.removesuffix(":latest")
        return [self.model] if short == self.model else [short, self.model]


@dataclass
class Pools:
    """Named pools and the paths that go to each: `routes` is [(pool name, servers)], the first one
    taking the embedding paths when there are two, the last one everything else."""

    frontend: str
    routes: list[tuple[str, list[Server]]]
    listen: tuple[str, int]
    servers: list[Server]  # every server once, in registry order
    warnings: list[str] = field(default_factory=list)
    models: list[ModelRoute] = field(default_factory=list)

    @property
    def keyed(self) -> list[Server]:
        return [server for server in self.servers if server.key_variable]

    @property
    def routed(self) -> bool:
        return len(self.routes) == 2

    @property
    def widest(self) -> int:
        """The number of servers in the largest pool, backups included: how many tries cover a pool."""
        return max(len(servers) for _, servers in self.routes)


def pool_name(options: Options) -> str:
    """`ollama`, or `ollama_chat`, `ollama_llama3_2_latest`...: distinct names for filtered pools."""
    parts = [UPSTREAM]
    if options.request_type:
        parts.append(options.request_type)
    if options.model:
        parts.append(re.sub(r"[^A-Za-z0-9]+", "_", normalise_model(options.model)).strip("_"))
    return "_".join(part for part in parts if part)


def _host_port(url: str) -> tuple[str, str, str]:
    """`http://gpu1:8080/p` -> ("http", "gpu1:8080", "/p") (URLs are canonical in the registry)."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    return scheme, authority, slash + path


def _health_note(instance: Instance, health: dict[str, Any]) -> str:
    entry = cache_entry(instance, health)
    if entry is None:
        return "never checked"
    if not entry["healthy"]:
        error = entry.get("error")
        return "unhealthy at its last check" + (f" ({comment_safe(str(error))[:80]})" if error else "")
    return ""


def build_pools(instances: Sequence[Instance], health: dict[str, Any], options: Options, engine: str,
                health_advice: str, key_problem: Callable[[Instance], str | None]) -> Pools:
    """The pools for `engine` (nginx, HAProxy). `health_advice` ends the warning about an unhealthy
    or never-checked instance; `key_problem(instance)` is None when a keyed instance can be given
    its key, else why it is left out. Raises NothingToExport when no pool has a server."""
    fmt = engine.lower()
    listen = split_listen(options.listen)
    warnings = listen_warnings(options)
    servers: list[Server] = []
    unchecked: dict[str, list[str]] = {}  # health note -> instance ids
    for instance in eligible(instances, options, warnings, fmt):
        scheme, address, path = _host_port(instance.url)
        if options.model and not serves_model(instance, health, options.model):
            if cache_entry(instance, health) is None:
                warnings.append(f"{instance.id}: no health check on record, so it is not known to serve"
                                f" {normalise_model(options.model)} and is left out; run `ollamactl refresh` first")
            continue
        if scheme != "http" or path:
            reason = "https" if scheme != "http" else f"the path prefix {path}"
            warnings.append(f"{instance.id} ({instance.url}) is left out: {engine} upstream servers carry no scheme or"
                            f" path, and {reason} cannot share a pool with plain http://host:port servers;"
                            " proxy it with its own location/backend by hand")
            continue
        variable = key_variable_of(instance)
        problem = key_problem(instance) if variable else None
        if problem:
            warnings.append(Said("{id} is left out: {problem}", id=instance.id, problem=problem))
            continue
        note = _health_note(instance, health) if instance.enabled else "disabled in ollamactl"
        if note and instance.enabled:
            unchecked.setdefault(note, []).append(instance.id)
        servers.append(Server(instance, address, note, variable))
    for note, ids in unchecked.items():
        warnings.append(f"{', '.join(ids)}: {note}; in the {engine} pool anyway: {health_advice}")
    if not servers:
        raise nothing_to_export(f"no instance {engine} can balance", instances, options, fmt, warnings)
    base = pool_name(options)
    kinds = [options.request_type] if options.request_type else list(KINDS)
    pools = [(kind, [s for s in servers if s.instance.serves(kind)]) for kind in kinds]
    pools = [(kind, members) for kind, members in pools if members]
    if len(pools) == 1 or pools[0][1] == pools[1][1]:  # one kind, or every instance serves both
        routes = [(base, pools[0][1])]
    else:  # embedding first: it takes the embedding paths, chat the rest
        routes = [(f"{base}_embedding", pools[1][1]), (f"{base}_chat", pools[0][1])]
    models = [] if options.model else model_routes(routes, health)  # --model: every server holds it
    return Pools(base, routes, listen, servers, warnings, models)


def model_routes(routes: list[tuple[str, list[Server]]], health: dict[str, Any]) -> list[ModelRoute]:
    """A ModelRoute for each model that only some of a path pool's enabled servers hold (with two
    pools, embedding models on the embedding paths only, and the others on the rest)."""
    found: list[ModelRoute] = []
    for number, (via, servers) in enumerate(routes):
        embedding = None if len(routes) == 1 else number == 0  # two routes: [embedding, chat]
        enabled = [server for server in servers if server.instance.enabled]
        holders: dict[str, dict[str, Server]] = {}  # model -> {instance id: server}
        for server in enabled:
            for name in model_list(cache_entry(server.instance, health)):
                # names are a server's text: only plain ones go into a config
                if SAFE_MODEL.fullmatch(name) and embedding in (None, is_embedding_model(name)):
                    holders.setdefault(normalise_model(name), {})[server.instance.id] = server
        for model, holding in sorted(holders.items()):
            if len(holding) < len(enabled):
                slug = re.sub(r"[^A-Za-z0-9]+", "_", model).strip("_")
                found.append(ModelRoute(via, model, f"{via}_m{len(found)}_{slug}", list(holding.values())))
    return found


def strategy_note(engine: str, strategy: str, directive: str) -> str:
    """The header line that says how the registry's strategy was translated."""
    if strategy == "least-latency":
        return (f"# strategy least-latency: open-source {engine} has no latency-based balancing;"
                f" {directive} is the closest")
    if strategy == "warm":
        return f"# strategy warm: {engine} cannot see which models are loaded; plain weighted round-robin"
    if strategy == "round-robin":
        return "# strategy round-robin: weighted round-robin (equal weights unless set in the registry)"
    return f"# strategy {strategy}"


def routing_note(pools: Pools, model_source: str) -> list[str]:
    """The header lines that say which requests go to which pool; `model_source` says how the
    engine finds a request's model."""
    if not pools.routed:
        lines = [f"# every path goes to {pools.routes[0][0]}"]
    else:
        lines = [f"# {', '.join(EMBEDDING_PATHS)} go to {pools.routes[0][0]}; every other path"
                 f" (/, /api/*, /v1/*) to {pools.routes[1][0]}"]
    if pools.models:
        held = "; ".join(f"{route.model} by {', '.join(s.instance.id for s in route.servers)}"
                         for route in pools.models)
        lines += [f"# Models only some servers hold go to those servers alone ({held}); other models to the"
                  " whole pool, which retries a 404 (model not found) on its other servers.",
                  f"# The model is {model_source}; regenerate after pulling or removing models."]
    return [comment_safe(line) for line in lines]
