"""The nginx export: a file for the http {} context with one gateway server routed by path.

Upstreams get a shared-memory `zone` (failure counts and rotation shared by every worker), retry
a request on the next server for connection errors, timeouts and 5xx before its first byte
reaches the client (as `run` fails over), as many times as the largest pool has servers (backups
included), and rest a failing server for CHECK_INTERVAL_S only, so a backup tier hands traffic
back soon after tier 0 recovers. Request bodies are buffered (Ollama's are small JSON): a body
that arrives after the headers, as Python clients send it, can then be sent again to the next
server. Responses stream without buffering. `/` is proxied too: Ollama's clients check a server
with `HEAD /`.

nginx cannot read the environment, so a keyed instance is left out unless the user names a
secrets file: then its key goes there (Exported.secrets, written 0600 by the CLI, never to
stdout), as a `map` the config includes, and the instance joins the pools through a key hop: a
server on a unix socket beside the secrets file that adds its Authorization header and proxies
to it. The gateway itself drops clients' Authorization headers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from ollamactl.core.errors import Said, UsageError
from ollamactl.core.export.common import (
    Exported,
    Options,
    command_line,
    key_variable_of,
    split_listen,
    target,
    tier_ranks,
)
from ollamactl.core.export.gateway import (
    CHECK_INTERVAL_S,
    EMBEDDING_PATHS,
    Pools,
    Server,
    build_pools,
    hop_name,
    routing_note,
    strategy_note,
)
from ollamactl.core.registry.instances import Instance

# nginx (open source) balancing directive per strategy; None: its default weighted round-robin.
NGINX_BALANCE = {"round-robin": None, "weighted": None, "random": "random", "least-latency": "least_conn",
                 "warm": None, "least-busy": "least_conn", "fastest": None}  # fastest: `bench --set-weights`
MAX_FAILS = 3
FAIL_TIMEOUT_S = CHECK_INTERVAL_S
BODY_IN_MEMORY = "1m"
READ_BODY = "/_ollamactl_read_body"
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the final NUL
HEALTH_ADVICE = (f"open-source nginx does not check health; it sends the instance requests, retries each failed one"
                 f" on another server, and rests the instance for {FAIL_TIMEOUT_S} s after {MAX_FAILS} failures")
_KEY_UNSAFE = re.compile(r"[^\x21-\x7e]|\$")  # nginx expands $ in strings; no escape exists for it
_PATH_UNSAFE = re.compile(r"[^\x21-\x7e]|[;{}#$\"'\\]")  # the path goes unquoted into include and listen


def nginx(instances: Sequence[Instance], health: dict[str, Any], options: Options) -> Exported:
    """The nginx config (and, with options.secrets_file, the secrets file's text)."""
    if options.secrets_file and _PATH_UNSAFE.search(options.secrets_file):
        raise UsageError(Said("{secrets_file} cannot go into an nginx directive ({path!r})", path=options.secrets_file),
                         "choose a path without spaces, quotes, ;, {, }, # or $")
    pools = build_pools(instances, health, options, "nginx", HEALTH_ADVICE, lambda i: _key_problem(i, options))
    directive = NGINX_BALANCE.get(options.strategy)
    keyed = pools.keyed
    lines = [
        f"# nginx config written by `{command_line('nginx', options)}`.",
        f"# Use: include it in the http {{}} block (include {target(options)};), then: nginx -t && nginx -s reload",
        strategy_note("nginx", options.strategy, (directive or "") + ";"),
        *routing_note(pools, f"the first \"model\" string of the body, read when nginx holds the body in memory"
                             f" (up to {BODY_IN_MEMORY}; a longer one goes to the whole pool)"),
        f"# Health: {HEALTH_ADVICE}.",
    ]
    if keyed:
        lines += [f"include {options.secrets_file};  # the keys of {', '.join(s.instance.id for s in keyed)} (0600)"]
    pass_to = _pass_to(pools, lines)
    for name, servers in [*pools.routes, *((route.pool, route.servers) for route in pools.models)]:
        lines += ["", *_upstream(name, directive, servers, options)]
    host, port = pools.listen
    lines += [
        "",
        "server {",
        f"    listen {_listen(host, port)};",
        "    client_max_body_size 100m;  # images and long prompts",
        f"    client_body_buffer_size {BODY_IN_MEMORY};  # bodies up to this size stay in memory (no temp file)",
        "    client_body_in_single_buffer on;",
        "",
        "    location / {",
        *([f"        mirror {READ_BODY};  # reads the body before proxy_pass picks a pool by its model"]
          if pools.models else []),
        f"        proxy_pass http://{pass_to};",
        *_proxy_settings('""'),
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        # fail over only before the first byte reaches the client (nginx never retries after)",
        "        # (http_404: model not found, when a model no server is known to hold went to the whole pool)",
        "        proxy_next_upstream error timeout http_404 http_500 http_502 http_503 http_504 non_idempotent;",
        f"        proxy_next_upstream_tries {pools.widest};  # every server of the largest pool, backups too",
        "        proxy_next_upstream_timeout 15m;",
        "    }",
        *([f"    location = {READ_BODY} {{ internal; return 204; }}  # the mirror's target: answers at once"]
          if pools.models else []),
        "}",
    ]
    for server in keyed:
        lines += [
            "",
            f"# {server.instance.id}'s key hop: adds its key (from the secrets file), reachable only by this nginx",
            f"upstream {server.hop} {{",
            f"    zone {server.hop} 64k;",
            f"    server {server.address};",
            "    keepalive 4;",
            "}",
            "server {",
            f"    listen unix:{socket_path(server.instance, options)};",
            "    location / {",
            f"        proxy_pass http://{server.hop};",
            *_proxy_settings("$" + server.hop),
            "        proxy_next_upstream off;  # the gateway's pool retries elsewhere",
            "    }",
            "}",
        ]
    secrets = _secrets_text(keyed, options) if keyed else None
    return Exported("\n".join(lines) + "\n", pools.warnings, secrets)


def _key_problem(instance: Instance, options: Options) -> str | None:
    if not options.secrets_file:
        return Said("nginx cannot read the environment, so its API key could only be written into this config;"
                    " pass {secrets_file=PATH} to give nginx its key in a separate 0600 file")
    key = options.keys.get(instance.id)
    if not key:
        return f"its key variable ${key_variable_of(instance)} is not set here; set it and export again"
    if _KEY_UNSAFE.search(key):
        return "its API key has characters nginx cannot take in a string ($, spaces, control or non-ASCII)"
    if len(os.fsencode(socket_path(instance, options))) > UNIX_PATH_MAX:
        return (f"its key hop's socket path {socket_path(instance, options)} is too long for a unix socket;"
                " put the secrets file in a directory with a shorter path")
    return None


def _pass_to(pools: Pools, lines: list[str]) -> str:
    """The proxy_pass target: the one pool, or a variable the path (and the model) map to a pool."""
    if not pools.routed and not pools.models:
        return pools.routes[0][0]
    port = pools.listen[1]
    variable = f"ollama_pool_{port}"
    by_path = f"ollama_path_pool_{port}" if pools.models else variable
    if pools.routed:
        (embedding, _), (chat, _) = pools.routes
        lines += ["", f"map $uri ${by_path} {{", f"    default {chat};"]
        lines += [f"    {path} {embedding};" for path in EMBEDDING_PATHS]
        lines.append("}")
    if pools.models:
        model = f"ollama_model_{port}"
        lines += ["", f"map $request_body ${model} {{", '    default "";',
                  '    "~\\"model\\"\\s*:\\s*\\"([^\\"]{1,200})\\"" $1;', "}"]
        key, default = (f"${by_path} ${model}", f"${by_path}") if pools.routed else (f"${model}", pools.routes[0][0])
        lines += ["", f'map "{key}" ${variable} {{', f"    default {default};"]
        for route in pools.models:
            prefix = f"{route.via} " if pools.routed else ""
            lines += [f'    "{prefix}{name}" {route.pool};' for name in route.names]
        lines.append("}")
    return "$" + variable


def _upstream(name: str, directive: str | None, servers: list[Server], options: Options) -> list[str]:
    lines = [f"upstream {name} {{", f"    zone {name} 64k;  # failure counts and rotation shared by all workers"]
    if directive:
        lines.append(f"    {directive};")
    ranks = tier_ranks([server.instance for server in servers])
    if ranks and directive == "random":
        lines.append("    # the priority tiers are left out: nginx's random balancing cannot have backup servers")
        ranks = {}
    for server in servers:
        keyed = server.key_variable is not None
        address = f"unix:{socket_path(server.instance, options)}" if keyed else server.address
        flags = ((f" max_conns={server.instance.max_inflight}" if server.instance.max_inflight else "")
                 + (" backup" if ranks.get(server.instance.id) else "")
                 + ("" if server.instance.enabled else " down"))
        comment = "; ".join(text for text in (server.instance.id, "via its key hop" if keyed else "", server.note)
                            if text)
        lines.append(f"    server {address} weight={server.instance.weight} max_fails={MAX_FAILS}"
                     f" fail_timeout={FAIL_TIMEOUT_S}s{flags};  # {comment}")
    return [*lines, "    keepalive 16;", "}"]


def socket_path(instance: Instance, options: Options) -> str:
    """A key hop's unix socket: beside the secrets file, named by listen port and instance."""
    assert options.secrets_file is not None  # keyed servers are admitted only with a secrets file
    port = split_listen(options.listen)[1]
    name = hop_name(instance).removeprefix("ollama_key_")
    return os.path.join(os.path.dirname(options.secrets_file), f"ollamactl-{port}-{name}.sock")


def _listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _proxy_settings(authorization: str) -> list[str]:
    return [
        "        proxy_http_version 1.1;",
        "        proxy_set_header Connection \"\";",
        "        proxy_set_header Host localhost;  # Ollama only accepts local Host headers",
        f"        proxy_set_header Authorization {authorization};"
        + ("  # clients' keys stop here; keyed instances get theirs in their hop" if authorization == '""' else ""),
        "        proxy_buffering off;  # stream tokens as they come",
        "        proxy_cache off;",
        "        proxy_request_buffering on;  # a request can be retried only if its body was kept",
        "        proxy_connect_timeout 5s;",
        "        proxy_send_timeout 600s;",
        "        proxy_read_timeout 600s;  # a cold model load can take minutes before the first byte",
    ]


def _secrets_text(keyed: list[Server], options: Options) -> str:
    lines = [f"# Keys for the nginx config written by `{command_line('nginx', options)}`; it includes this file.",
             "# Keep it 0600: nginx reads it as root at start-up."]
    for server in keyed:
        key = options.keys[server.instance.id].replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'map $host ${server.hop} {{ default "Bearer {key}"; }}  # {server.instance.id}')
    return "\n".join(lines) + "\n"

