"""Export the fleet as configuration for other tools: LiteLLM, nginx, HAProxy, or plain JSON.

Pure functions: registry instances + the health cache in, text + warnings out. Nothing here
prints, reads files or touches the network; `Fleet.export` and `ollamactl export` (cli/export_cmd.py) do.

Rules shared by every format:
- A key stored in the registry is never written out. LiteLLM gets an env var reference
  (`os.environ/OLLAMA_KEY_<ID>`) and a warning tells the user to export that variable; an
  `api_key_env` reference is written as `os.environ/<VAR>`. nginx and HAProxy get no key at all.
- Disabled instances are left out unless `include_all`; then nginx marks them `down` and HAProxy
  `disabled`. LiteLLM has no such flag, so they never go into its `model_list`.
- nginx and HAProxy balance `host:port` servers of one scheme with no path: instances behind
  https or a path prefix are left out with a warning saying why.
- The registry weight is exported as is (LiteLLM `weight`, nginx `weight=`, HAProxy `weight`).

The JSON format (`--format json`) is stable; fields may be added, never renamed or removed
without bumping "schema":

    {"schema": 1,
     "strategy": "round-robin",                   # [settings] strategy
     "instances": [
       {"id": "gpu1-11434", "name": "GPU box 1", "url": "http://gpu1:11434",
        "type": "chat|embedding|both", "enabled": true, "weight": 1,
        "auth": "none | stored | env:VAR",         # never a key value
        "created_at": "2026-11-27T10:00:00Z" | null,
        "health": null | {                         # the last check, from the health cache
          "healthy": true, "error": null | "connection refused", "latency_ms": 12.5 | null,
          "version": "0.12.0" | null,
          "models": [{"name": "llama3.2:latest", "digest": "sha256...", "size": 2019393189}],
          "loaded": ["llama3.2:latest"] | null,    # null: the server cannot tell
          "checked_at": "2026-11-27T10:00:00.000Z"}}]}

JSON lists every instance (disabled ones too: see "enabled"); --type and --model filter it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ollamactl.core.errors import NoInstanceError, UsageError
from ollamactl.core.registry import Instance
from ollamactl.core.selection import REQUEST_TYPES
from ollamactl.core.timefmt import iso_utc
from ollamactl.model_names import normalise_model

FORMATS = ("litellm", "nginx", "haproxy", "json")
JSON_SCHEMA = 1
UPSTREAM = "ollama"
LISTEN_PORT = 11434
HAPROXY_MAX_WEIGHT = 256

# Our strategies -> LiteLLM router_settings.routing_strategy. LiteLLM has no round-robin:
# simple-shuffle is its weighted random choice (uniform when all weights are equal).
LITELLM_STRATEGIES = {
    "round-robin": "simple-shuffle",
    "weighted": "simple-shuffle",
    "random": "simple-shuffle",
    "least-latency": "latency-based-routing",
    "warm": "latency-based-routing",  # no "warm" in LiteLLM; cold model loads show up as latency
}
# nginx (open source) balancing directive per strategy; None: its default weighted round-robin.
NGINX_BALANCE = {"round-robin": None, "weighted": None, "random": "random", "least-latency": "least_conn",
                 "warm": None}
HAPROXY_BALANCE = {"round-robin": "roundrobin", "weighted": "roundrobin", "random": "random",
                   "least-latency": "leastconn", "warm": "roundrobin"}
_EMBEDDING_HINTS = ("embed", "all-minilm", "bge-", "bge:", "paraphrase-multilingual")


@dataclass
class Exported:
    """The text to write and the warnings to show the user (on stderr)."""

    text: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    model: str | None = None  # only instances (LiteLLM: entries) serving this model
    request_type: str | None = None  # chat | embedding
    include_all: bool = False  # also disabled instances
    strategy: str = "round-robin"
    health_ttl: float = 300.0  # older cache entries get a warning
    now: float | None = None  # epoch seconds, for the staleness warning (None: no such warning)


def export(fmt: str, instances: Sequence[Instance], health: dict[str, Any], options: Options) -> Exported:
    """`fmt` (one of FORMATS) for these registry instances and health cache entries {id: entry}.

    Raises NothingToExport (a NoInstanceError, exit 3) when nothing is left to export, except for
    JSON, which may be empty.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", f"choose one of: {', '.join(FORMATS)}")
    if options.request_type is not None and options.request_type not in REQUEST_TYPES:
        raise UsageError(f"unknown type {options.request_type!r}", f"choose one of: {', '.join(REQUEST_TYPES)}")
    if options.model is not None and not options.model.strip():
        raise UsageError("--model is empty", "give a model name such as llama3.2")
    writers = {"litellm": litellm, "nginx": nginx, "haproxy": haproxy, "json": as_json}
    return writers[fmt](instances, health, options)


# ---------------------------------------------------------------------------------------------
# Shared helpers


def key_variable(instance: Instance) -> str:
    """The env var that should hold a stored key: OLLAMA_KEY_<ID> (upper case, `_` for others)."""
    return "OLLAMA_KEY_" + re.sub(r"[^A-Z0-9_]", "_", instance.id.upper())


def cache_entry(instance: Instance, health: dict[str, Any]) -> dict[str, Any] | None:
    """The health cache entry for `instance`, if it is well formed and for the instance's current URL."""
    entry = health.get(instance.id)
    if not isinstance(entry, dict) or entry.get("url") != instance.url or not isinstance(entry.get("healthy"), bool):
        return None
    return entry


def model_list(entry: dict[str, Any] | None) -> list[str]:
    """Model names of a cache entry, as /api/tags spelled them, without duplicates."""
    models = (entry or {}).get("models")
    if not isinstance(models, list):
        return []
    names = [m.get("name") for m in models if isinstance(m, dict)]
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and n))


def is_embedding_model(name: str) -> bool:
    """A guess from the name, for instances of type `both` (the health cache has no model family)."""
    base = normalise_model(name).rsplit("/", 1)[-1].lower()
    return any(hint in base for hint in _EMBEDDING_HINTS)


def _serves_model(instance: Instance, health: dict[str, Any], model: str) -> bool:
    wanted = normalise_model(model)
    return any(normalise_model(name) == wanted for name in model_list(cache_entry(instance, health)))


def _eligible(instances: Sequence[Instance], options: Options, warnings: list[str], fmt: str) -> list[Instance]:
    """Type and enabled filters (the model filter is per format)."""
    chosen = []
    skipped_disabled = []
    for instance in instances:
        if options.request_type and not instance.serves(options.request_type):
            continue
        if not instance.enabled and (not options.include_all or fmt == "litellm"):
            skipped_disabled.append(instance.id)
            continue
        chosen.append(instance)
    if skipped_disabled and options.include_all and fmt == "litellm":
        warnings.append("LiteLLM has no way to mark a deployment disabled; left out disabled instance(s) "
                        + ", ".join(skipped_disabled))
    return chosen


class NothingToExport(NoInstanceError):
    """Nothing is left to export; `warnings` say why instances were left out (show them first)."""

    def __init__(self, message: str, hint: str | None, warnings: list[str]):
        super().__init__(message, hint)
        self.warnings = warnings


def _nothing(what: str, instances: Sequence[Instance], options: Options, fmt: str,
             warnings: list[str]) -> NothingToExport:
    if not instances:
        return NothingToExport("no instances registered: nothing to export", "add one with `ollamactl add URL`",
                               warnings)
    filters = []
    if options.request_type:
        filters.append(f"type {options.request_type}")
    if options.model:
        filters.append(f"model {normalise_model(options.model)}")
    scope = f" for {' and '.join(filters)}" if filters else ""
    hint = "run `ollamactl refresh` to update the health cache"
    if fmt != "litellm" and not options.include_all and any(not i.enabled for i in instances):
        hint += ", or pass --all to include disabled instances"
    return NothingToExport(f"nothing to export{scope}: {what}", hint, warnings)


def _staleness(instance: Instance, entry: dict[str, Any], options: Options, warnings: list[str]) -> None:
    checked = entry.get("checked_at")
    if options.now is None or not isinstance(checked, (int, float)) or isinstance(checked, bool):
        return
    age = options.now - checked
    if age > options.health_ttl:
        warnings.append(f"{instance.id}: its model list is from a check {_age_words(age)} old;"
                        " `ollamactl refresh` updates it")


def _age_words(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _command(fmt: str, options: Options) -> str:
    words = ["ollamactl", "export", "--format", fmt]
    if options.model:
        words += ["--model", options.model]
    if options.request_type:
        words += ["--type", options.request_type]
    if options.include_all:
        words.append("--all")
    return " ".join(_comment_safe(w) for w in words)


def _comment_safe(text: str) -> str:
    """Text for a one-line comment: printable, no line breaks."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


# ---------------------------------------------------------------------------------------------
# LiteLLM


def yaml_str(text: str) -> str:
    """A YAML double-quoted scalar (valid YAML 1.1 and 1.2) for any string."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F or 0x80 <= code <= 0x9F:
            out.append(f"\\x{code:02x}")
        elif code in (0x2028, 0x2029, 0xFEFF) or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            out.append(f"\\u{code:04x}")  # YAML 1.1 line breaks, BOM, surrogates, non-characters
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def litellm(instances: Sequence[Instance], health: dict[str, Any], options: Options) -> Exported:
    """A LiteLLM proxy config.yaml: one model_list entry per (instance, model) in the health cache."""
    warnings: list[str] = []
    wanted = normalise_model(options.model) if options.model else None
    entries: dict[str, list[tuple[Instance, str, str]]] = {}  # model -> [(instance, kind, name)]
    used: list[Instance] = []
    for instance in _eligible(instances, options, warnings, "litellm"):
        entry = cache_entry(instance, health)
        if entry is None:
            warnings.append(f"{instance.id}: no health check on record, so its models are unknown and it is left"
                            " out; run `ollamactl refresh` first")
            continue
        names = model_list(entry)
        if not names:
            why = "was unhealthy at its last check" if not entry["healthy"] else "listed no models"
            if not entry["healthy"] and entry.get("error"):
                why += f" ({_comment_safe(str(entry['error']))})"
            warnings.append(f"{instance.id}: {why}, so it is left out; run `ollamactl refresh` to check it again")
            continue
        _staleness(instance, entry, options, warnings)
        added = False
        for name in names:
            if wanted and normalise_model(name) != wanted:
                continue
            if instance.type == "both":
                kind = "embedding" if is_embedding_model(name) else "chat"
            else:
                kind = instance.type
            if options.request_type and kind != options.request_type:
                continue
            entries.setdefault(name, []).append((instance, kind, name))
            added = True
        if added:
            used.append(instance)
    if not entries:
        raise _nothing("no instance in the health cache has a matching model", instances, options, "litellm",
                       warnings)

    lines = [
        f"# LiteLLM proxy config written by `{_command('litellm', options)}`.",
        "# Models come from ollamactl's health cache (`ollamactl refresh` updates it); regenerate after changes.",
        "# Run it with: litellm --config config.yaml",
        "model_list:",
    ]
    for name in sorted(entries):
        for instance, kind, raw in entries[name]:
            prefix = "ollama_chat" if kind == "chat" else "ollama"
            lines += [
                f"  - model_name: {yaml_str(raw)}",
                "    litellm_params:",
                f"      model: {yaml_str(f'{prefix}/{raw}')}",
                f"      api_base: {yaml_str(instance.url)}",
            ]
            if instance.api_key_env:
                lines.append(f"      api_key: {yaml_str('os.environ/' + instance.api_key_env)}")
            elif instance.api_key:
                lines.append(f"      api_key: {yaml_str('os.environ/' + key_variable(instance))}")
            lines += [
                f"      weight: {instance.weight}",
                "    model_info:",
                f"      mode: {yaml_str(kind)}",
                f"      ollamactl_instance: {yaml_str(instance.id)}",
            ]
    readers: dict[str, list[str]] = {}
    for instance in used:
        if instance.api_key and not instance.api_key_env:
            readers.setdefault(key_variable(instance), []).append(instance.id)
            warnings.append(f"{instance.id}: its API key is stored in the registry and is not written out; the config"
                            f" reads it from ${key_variable(instance)}, so export that variable where LiteLLM runs")
    for variable, ids in readers.items():
        if len(ids) > 1:
            warnings.append(f"{' and '.join(ids)} would both read ${variable}; give one of them its own variable"
                            " with `ollamactl update ID --api-key-env VAR`")
    lines += ["router_settings:", f"  routing_strategy: {yaml_str(litellm_strategy(options.strategy))}"]
    aliases = {}
    for name in sorted(entries):
        short = name[: -len(":latest")] if name.endswith(":latest") else None
        if short and short not in entries:
            aliases[short] = name
    if aliases:  # clients may ask for `llama3.2` when /api/tags says `llama3.2:latest`
        lines.append("  model_group_alias:")
        lines += [f"    {yaml_str(short)}: {yaml_str(name)}" for short, name in aliases.items()]
    if options.strategy == "warm":
        warnings.append("LiteLLM has no `warm` strategy; exported as latency-based-routing"
                        " (an instance loading the model answers slowly, so it is avoided)")
    return Exported("\n".join(lines) + "\n", warnings)


def litellm_strategy(strategy: str) -> str:
    return LITELLM_STRATEGIES.get(strategy, "simple-shuffle")


# ---------------------------------------------------------------------------------------------
# nginx and HAProxy


def _host_port(url: str) -> tuple[str, str, str]:
    """`http://gpu1:11434/p` -> ("http", "gpu1:11434", "/p") (URLs are canonical in the registry)."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    return scheme, authority, slash + path


def _balanced_servers(instances: Sequence[Instance], health: dict[str, Any], options: Options,
                      fmt: str) -> tuple[list[tuple[Instance, str]], list[str]]:
    """The (instance, host:port) pairs a load balancer can take, and warnings for the rest."""
    warnings: list[str] = []
    servers = []
    keyed = []
    for instance in _eligible(instances, options, warnings, fmt):
        scheme, address, path = _host_port(instance.url)
        if options.model and not _serves_model(instance, health, options.model):
            if cache_entry(instance, health) is None:
                warnings.append(f"{instance.id}: no health check on record, so it is not known to serve"
                                f" {normalise_model(options.model)} and is left out; run `ollamactl refresh` first")
            continue
        if scheme != "http" or path:
            reason = "https" if scheme != "http" else f"the path prefix {path}"
            warnings.append(f"{instance.id} ({instance.url}) is left out: {fmt} upstream servers carry no scheme or"
                            f" path, and {reason} cannot share a pool with plain http://host:port servers;"
                            " proxy it with its own location/backend by hand")
            continue
        servers.append((instance, address))
        if instance.api_key or instance.api_key_env:
            keyed.append(instance.id)
    if keyed:
        warnings.append(f"{', '.join(keyed)} use an API key; the {fmt} config sends none (keys are never written"
                        " out): let clients send their own Authorization header or add it by hand")
    kinds = {instance.type for instance, _ in servers}
    if not options.request_type and len(kinds) > 1 and kinds != {"both"}:
        warnings.append(f"the pool mixes instance types ({', '.join(sorted(kinds))}) and {fmt} cannot route by"
                        " request type, so a request may reach an instance that does not serve it; export"
                        " --type chat and --type embedding as two pools instead")
    return servers, warnings


def pool_name(options: Options) -> str:
    """`ollama`, or `ollama_chat`, `ollama_llama3_2_latest`...: distinct names for filtered pools."""
    parts = [UPSTREAM]
    if options.request_type:
        parts.append(options.request_type)
    if options.model:
        parts.append(re.sub(r"[^A-Za-z0-9]+", "_", normalise_model(options.model)).strip("_"))
    return "_".join(part for part in parts if part)


def _strategy_note(fmt: str, options: Options, directive: str | None) -> list[str]:
    strategy = options.strategy
    if strategy == "least-latency":
        return [f"# strategy least-latency: open-source {fmt} has no latency-based balancing;"
                f" {directive} is the closest"]
    if strategy == "warm":
        return [f"# strategy warm: {fmt} cannot see which models are loaded; plain weighted round-robin"]
    if strategy == "round-robin":
        return ["# strategy round-robin: weighted round-robin (equal weights unless set in the registry)"]
    return [f"# strategy {strategy}"]


def nginx(instances: Sequence[Instance], health: dict[str, Any], options: Options) -> Exported:
    """An nginx `upstream` and a `server` proxying /api/ and /v1/, streaming-friendly."""
    servers, warnings = _balanced_servers(instances, health, options, "nginx")
    if not servers:
        raise _nothing("no instance nginx can balance", instances, options, "nginx", warnings)
    directive = NGINX_BALANCE.get(options.strategy)
    name = pool_name(options)
    lines = [
        f"# nginx config written by `{_command('nginx', options)}`.",
        "# Include it in the http {} context (e.g. /etc/nginx/conf.d/ollama.conf), then: nginx -t && nginx -s reload",
        *_strategy_note("nginx", options, (directive or "") + ";"),
        f"upstream {name} {{",
    ]
    if directive:
        lines.append(f"    {directive};")
    for instance, address in servers:
        down = "" if instance.enabled else " down"
        note = "" if instance.enabled else " (disabled in ollamactl)"
        lines.append(f"    server {address} weight={instance.weight} max_fails=3 fail_timeout=30s{down};"
                     f"  # {instance.id}{note}")
    lines += [
        "    keepalive 16;",
        "}",
        "",
        "server {",
        f"    listen {LISTEN_PORT};  # change it if an Ollama server runs on this host",
        "    client_max_body_size 100m;  # images and long prompts",
    ]
    for location in ("/api/", "/v1/"):
        lines += [
            "",
            f"    location {location} {{",
            f"        proxy_pass http://{name};",
            "        proxy_http_version 1.1;",
            "        proxy_set_header Connection \"\";",
            "        proxy_set_header Host localhost;  # Ollama only accepts local Host headers",
            "        proxy_buffering off;  # stream tokens as they come",
            "        proxy_cache off;",
            "        proxy_request_buffering off;",
            "        proxy_connect_timeout 5s;",
            "        proxy_send_timeout 600s;",
            "        proxy_read_timeout 600s;  # a cold model load can take minutes before the first byte",
            "        # fail over only before the first byte reaches the client (nginx never retries after)",
            "        proxy_next_upstream error timeout http_502 http_503 non_idempotent;",
            "        proxy_next_upstream_tries 3;",
            "    }",
        ]
    lines.append("}")
    return Exported("\n".join(lines) + "\n", warnings)


def haproxy(instances: Sequence[Instance], health: dict[str, Any], options: Options) -> Exported:
    """An HAProxy frontend + backend with active checks on /api/version."""
    servers, warnings = _balanced_servers(instances, health, options, "HAProxy")
    if not servers:
        raise _nothing("no instance HAProxy can balance", instances, options, "haproxy", warnings)
    balance = HAPROXY_BALANCE.get(options.strategy, "roundrobin")
    name = pool_name(options)
    lines = [
        f"# HAProxy config written by `{_command('haproxy', options)}`.",
        "# Add it to haproxy.cfg (HAProxy 2.0 or later), then: haproxy -c -f /etc/haproxy/haproxy.cfg && reload",
        *_strategy_note("HAProxy", options, f"balance {balance}"),
        f"frontend {name}",
        "    mode http",
        f"    bind :{LISTEN_PORT}  # change it if an Ollama server runs on this host",
        "    timeout client 10m",
        f"    default_backend {name}",
        "",
        f"backend {name}",
        "    mode http",
        f"    balance {balance}",
        "    option httpchk GET /api/version",
        "    http-check expect status 200",
        "    http-request set-header Host localhost  # Ollama only accepts local Host headers",
        "    timeout connect 5s",
        "    timeout server 10m  # a cold model load can take minutes before the first byte",
        "    retries 2",
        "    option redispatch",
    ]
    for instance, address in servers:
        weight = instance.weight
        if weight > HAPROXY_MAX_WEIGHT:
            warnings.append(f"{instance.id}: weight {weight} is above HAProxy's maximum; written as"
                            f" {HAPROXY_MAX_WEIGHT}")
            weight = HAPROXY_MAX_WEIGHT
        disabled = "" if instance.enabled else " disabled"
        lines.append(f"    server {instance.id} {address} check inter 2s rise 2 fall 3 weight {weight}{disabled}")
    return Exported("\n".join(lines) + "\n", warnings)


# ---------------------------------------------------------------------------------------------
# JSON


def _health_json(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    listed = entry.get("models") if isinstance(entry.get("models"), list) else []
    models = [{"name": m.get("name"), "digest": m.get("digest"), "size": m.get("size")}
              for m in listed if isinstance(m, dict) and isinstance(m.get("name"), str)]
    loaded = entry.get("loaded")
    return {
        "healthy": entry["healthy"],
        "error": entry.get("error"),
        "latency_ms": entry.get("latency_ms"),
        "version": entry.get("version"),
        "models": models,
        "loaded": list(loaded) if isinstance(loaded, list) else None,
        "checked_at": iso_utc(entry.get("checked_at")),
    }


def as_json(instances: Sequence[Instance], health: dict[str, Any], options: Options) -> Exported:
    """The registry (no key values) with each instance's last health check; see the module docstring."""
    rows = []
    for instance in instances:
        if options.request_type and not instance.serves(options.request_type):
            continue
        if options.model and not _serves_model(instance, health, options.model):
            continue
        rows.append({**instance.public(), "health": _health_json(cache_entry(instance, health))})
    data = {"schema": JSON_SCHEMA, "strategy": options.strategy, "instances": rows}
    return Exported(json.dumps(data, indent=2, ensure_ascii=False) + "\n", [])
