"""The HAProxy export: a file loaded after haproxy.cfg (`haproxy -f haproxy.cfg -f PATH`).

One frontend routed by path to the chat and embedding backends, and by the body's "model" to the
backend of a model only some servers hold (export.gateway.ModelRoute); active checks on /api/version
with rise/fall; `http-no-delay`, or HAProxy holds small writes back and a token stream arrives in
one lump; layer-7 retries on connection failures, empty or timed-out responses, 404 (model not
found: the pool of a model no server is known to hold) and 5xx, each on
another server (`option redispatch 1`) and as many as the pool has other servers, as `run` fails
over; `option http-buffer-request`, since a request can be retried only once its whole body is
in HAProxy's buffer (Python clients send it after the headers); request logs and X-Forwarded-For.

Keys: a keyed instance sits in the pools as a key hop, a `listen` section on an abstract unix
socket (no file, no port) that adds its `Authorization: Bearer "${VAR}"` header (HAProxy expands
the variable from its environment at load) and checks the instance with that header too. The
frontend drops clients' own Authorization headers, so a key reaches only its instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ollamactl.core.export.common import Exported, Options, command_line, key_warnings, target, tier_ranks
from ollamactl.core.export.gateway import (
    CHECK_INTERVAL_S,
    EMBEDDING_PATHS,
    Pools,
    Server,
    build_pools,
    routing_note,
    strategy_note,
)
from ollamactl.core.registry.instances import Instance

HAPROXY_MAX_WEIGHT = 256
HAPROXY_BALANCE = {"round-robin": "roundrobin", "weighted": "roundrobin", "random": "random",
                   "least-latency": "leastconn", "warm": "roundrobin", "least-busy": "leastconn",
                   "fastest": "roundrobin"}  # fastest: by the weights `bench --set-weights` writes
CHECK = f"check inter {CHECK_INTERVAL_S}s rise 2 fall 3"
HEALTH_ADVICE = "HAProxy checks it itself (GET /api/version) and sends it requests only while that answers 200"


def haproxy(instances: Sequence[Instance], health: dict[str, Any], options: Options) -> Exported:
    """The HAProxy config: frontend, one backend per pool, one key hop per keyed instance."""
    pools = build_pools(instances, health, options, "HAProxy", HEALTH_ADVICE, lambda instance: None)
    warnings = pools.warnings
    balance = HAPROXY_BALANCE.get(options.strategy, "roundrobin")
    keyed = pools.keyed
    path = target(options)
    lines = [
        f"# HAProxy config written by `{command_line('haproxy', options)}`.",
        f"# Use: haproxy -f /etc/haproxy/haproxy.cfg -f {path}"
        f"  (check first: haproxy -c -f /etc/haproxy/haproxy.cfg -f {path});"
        f" HAProxy {'2.4' if pools.models else '2.2'} or later",
    ]
    if keyed:
        variables = ", ".join(dict.fromkeys(s.key_variable for s in keyed if s.key_variable))
        lines.append(f"# Keys: HAProxy reads {variables} from its environment at load; set them where it starts")
        warnings += key_warnings([s.instance for s in keyed], "HAProxy")
    lines += [
        strategy_note("HAProxy", options.strategy, f"balance {balance}"),
        *routing_note(pools, "the body's top-level \"model\" (req.body,json_query)"),
        f"# Health: {HEALTH_ADVICE}.",
        "",
        *_frontend(pools),
    ]
    for name, servers in [*pools.routes, *((route.pool, route.servers) for route in pools.models)]:
        lines += ["", *_backend(name, balance, servers, pools, warnings)]
    for server in keyed:
        lines += ["", *_key_hop(server, pools)]
    return Exported("\n".join(lines) + "\n", warnings)


def _frontend(pools: Pools) -> list[str]:
    host, port = pools.listen
    lines = [
        f"frontend {pools.frontend}",
        "    mode http",
        f"    bind {'[' + host + ']' if ':' in host else host}:{port}",
        "    log global",
        "    option httplog",
        "    option forwardfor",
        "    option http-no-delay  # stream tokens as they come (no waiting to fill packets)",
        "    option http-buffer-request  # the whole body before routing: a retry can send it again",
        "    timeout client 10m",
        "    http-request del-header Authorization  # clients' keys stop here; keyed instances get theirs in their hop",
    ]
    if pools.models:
        lines.append("    http-request set-var(txn.model) req.body,json_query('$.model')")
    if pools.routed:
        lines.append(f"    acl embedding_path path {' '.join(EMBEDDING_PATHS)}")
    embedding = pools.routes[0][0] if pools.routed else None
    for number, route in enumerate(pools.models):
        path = "" if embedding is None else " embedding_path" if route.via == embedding else " !embedding_path"
        lines += [f"    acl model_{number} var(txn.model) -m str {' '.join(route.names)}",
                  f"    use_backend {route.pool} if{path} model_{number}"]
    if embedding is not None:
        lines.append(f"    use_backend {embedding} if embedding_path")
    lines.append(f"    default_backend {pools.routes[-1][0]}")
    return lines


def _backend(name: str, balance: str, servers: list[Server], pools: Pools, warnings: list[str]) -> list[str]:
    lines = [
        f"backend {name}",
        "    mode http",
        f"    balance {balance}",
        "    option http-no-delay",
        "    option http-buffer-request",
        "    option httpchk GET /api/version",
        "    http-check expect status 200",
        "    http-request set-header Host localhost  # Ollama only accepts local Host headers",
        "    timeout connect 5s",
        "    timeout server 10m  # a cold model load can take minutes before the first byte",
        f"    retries {max(len(servers) - 1, 1)}  # as many as the pool has other servers (one at least)",
        "    option redispatch 1  # each retry on another server",
        "    retry-on conn-failure empty-response response-timeout 404 500 502 503 504  # 404: model not found",
    ]
    ranks = tier_ranks([server.instance for server in servers])
    for server in servers:
        instance = server.instance
        weight = instance.weight
        if weight > HAPROXY_MAX_WEIGHT:
            message = f"{instance.id}: weight {weight} is above HAProxy's maximum; written as {HAPROXY_MAX_WEIGHT}"
            if message not in warnings:
                warnings.append(message)
            weight = HAPROXY_MAX_WEIGHT
        address = _hop_address(server, pools) if server.key_variable else server.address
        disabled = (f" maxconn {instance.max_inflight}" if instance.max_inflight else "") + \
            (" backup" if ranks.get(instance.id) else "") + ("" if instance.enabled else " disabled")
        comments = [text for text in ("via its key hop" if server.key_variable else "", server.note) if text]
        comment = f"  # {'; '.join(comments)}" if comments else ""
        lines.append(f"    server {instance.id} {address} {CHECK} weight {weight}{disabled}{comment}")
    return lines


def _hop_address(server: Server, pools: Pools) -> str:
    return f"abns@ollamactl-{pools.listen[1]}-{server.hop}"


def _key_hop(server: Server, pools: Pools) -> list[str]:
    bearer = f'"Bearer ${{{server.key_variable}}}"'
    return [
        f"listen {server.hop}  # {server.instance.id}'s key hop: only its requests and checks carry its key",
        "    mode http",
        f"    bind {_hop_address(server, pools)}",
        "    option http-no-delay",
        "    timeout client 10m",
        "    timeout connect 5s",
        "    timeout server 10m",
        "    option httpchk",
        f"    http-check send meth GET uri /api/version hdr Host localhost hdr Authorization {bearer}",
        "    http-check expect status 200",
        "    http-request set-header Host localhost",
        f"    http-request set-header Authorization {bearer}",
        f"    server {server.instance.id} {server.address} {CHECK}",
    ]
