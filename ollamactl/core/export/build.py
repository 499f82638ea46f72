"""Export the fleet as configuration for other tools: LiteLLM, nginx, HAProxy, or plain JSON.

Pure functions: registry instances + the health cache in, text + warnings out. Nothing here
prints, reads files or touches the network; `Fleet.export` and `ollamactl export` (cli/integrations/export_cmd.py) do.

Rules shared by every format:
- A key is never written to the exported text. LiteLLM and HAProxy get an environment variable
  reference (`os.environ/VAR`, `"${VAR}"`: the instance's `api_key_env`, or OLLAMA_KEY_<ID> for a
  stored key, with a warning to export it); nginx cannot read the environment, so its keys go only
  to a separate secrets file (Exported.secrets, written 0600 by the CLI). See export/gateway.py.
- Disabled instances are left out unless `include_all`; then nginx marks them `down` and HAProxy
  `disabled`. LiteLLM has no such flag, so they never go into its `model_list`.
- Unhealthy and never-checked instances: nginx and HAProxy take them, marked and warned about
  (HAProxy checks them itself, nginx fails over and skips them after failures); LiteLLM needs the
  model list of a check, so it leaves them out with a warning.
- The registry weight is exported as is (LiteLLM `weight`, nginx `weight=`, HAProxy `weight`).
- `max_inflight` becomes nginx `max_conns=`, HAProxy `maxconn` (it queues the rest) and LiteLLM
  `max_parallel_requests`. Priority tiers (export.common.tier_ranks): nginx and HAProxy mark every
  server below the best tier `backup` (nginx's `random` balancing cannot have backups: there the
  tiers are left out); LiteLLM gets `order` (1 = the best tier).
- Every header comment says exactly how to use the file, with the path it was written to.

The JSON format (`--format json`) is stable; fields may be added, never renamed or removed
without bumping "schema":

    {"schema": 1,
     "strategy": "round-robin",                   # [settings] strategy
     "instances": [
       {"id": "gpu1-8080", "name": "GPU box 1", "url": "http://gpu1:8080",
        "type": "chat|embedding|both", "enabled": true, "weight": 1,
        "priority": 0 | "backup", "max_inflight": null | 4,
        "auth": "none | stored | env:VAR",         # never a key value
        "created_at": "2026-11-27T10:00:00Z" | null,
        "health": null | {                         # the last check, from the health cache
          "healthy": true, "error": null | "connection refused", "latency_ms": 12.5 | null,
          "version": "0.12.0" | null,
          "models": [{"name": "llama3.2:latest", "digest": "sha256...", "size": 2019393189}],
          "loaded": ["llama3.2:latest"] | null,    # null: the server cannot tell
          "checked_at": "2026-11-27T10:00:00.000Z"}}]}

JSON lists every instance (disabled ones too: see "enabled"); --type and --model filter it.
What the formats share is in export/common.py; nginx and HAProxy configs are written by
export/nginx.py and export/haproxy.py over the pools of export/gateway.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ollamactl.core.errors import Said, UsageError
from ollamactl.core.export.common import (
    Exported,
    Options,
    cache_entry,
    command_line,
    comment_safe,
    eligible,
    is_embedding_model,
    key_variable_of,
    key_warnings,
    listen_warnings,
    model_list,
    nothing_to_export,
    serves_model,
    split_listen,
    target,
    tier_ranks,
)
from ollamactl.core.registry.instances import Instance
from ollamactl.core.routing.selection import REQUEST_TYPES
from ollamactl.model_names import normalise_model
from ollamactl.timefmt import age as age_words
from ollamactl.timefmt import iso_utc

FORMATS = ("litellm", "nginx", "haproxy", "json")
JSON_SCHEMA = 1
MASTER_KEY_VARIABLE = "LITELLM_MASTER_KEY"
# LiteLLM router resilience, in the spirit of `run`'s failover: retry on another deployment (each
# try draws one at random, by weight), and ask LiteLLM to rest a deployment from its first failure
# (allowed_fails 0) for 30 s. LiteLLM never cools down a deployment that refuses connections (it
# skips cooldown for APIConnectionError), so the retries are what keep a dead server from clients:
# drawn 1 time in 3, it fails a call only when all 10 tries draw it, 1 time in 3**10 = 59049 (3
# tries failed 1 call in 81: tests/test_litellm_proxy.py). A retry that has live deployments left
# is sent at once, so the tries cost a dead server's refused connections only.
LITELLM_RESILIENCE = {"num_retries": 9, "retry_after": 1, "allowed_fails": 0, "cooldown_time": 30}

# Our strategies -> LiteLLM router_settings.routing_strategy. LiteLLM has no round-robin:
# simple-shuffle is its weighted random choice (uniform when all weights are equal). Not
# latency-based-routing for least-latency or warm: a server that refuses connections fails fast, so
# LiteLLM 1.110 ranks it fastest and sends it nearly every call (38 of 40 failed with one of three
# servers dead, tests/test_gateways.py); its retries then draw it again.
LITELLM_STRATEGIES = {
    "round-robin": "simple-shuffle",
    "weighted": "simple-shuffle",
    "random": "simple-shuffle",
    "least-latency": "simple-shuffle",
    "warm": "simple-shuffle",
    "least-busy": "least-busy",
    "fastest": "simple-shuffle",
}
LITELLM_SUBSTITUTES = {
    "least-latency": "LiteLLM's latency-based-routing sends nearly every call to a server that fails fast"
                     " (a dead one looks quickest); exported as simple-shuffle",
    "warm": "LiteLLM has no `warm` strategy, and its latency-based-routing sends nearly every call to a server"
            " that fails fast (a dead one looks quickest); exported as simple-shuffle",
    "fastest": "LiteLLM does not route on Ollama's measured generation speed (its latency-based-routing counts"
               " fast failures as fast); exported as simple-shuffle, weighted as `bench --set-weights` wrote",
}


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
        raise UsageError(Said("{model} is empty"), "give a model name such as llama3.2")
    if fmt == "nginx":
        from ollamactl.core.export.nginx import nginx as writer
    elif fmt == "haproxy":
        from ollamactl.core.export.haproxy import haproxy as writer
    else:
        writer = litellm if fmt == "litellm" else as_json
    return writer(instances, health, options)


# ---------------------------------------------------------------------------------------------
# LiteLLM helpers


def deployment_kind(instance: Instance, name: str) -> str | None:
    """`chat` or `embedding`: what a LiteLLM deployment of model `name` on `instance` serves; None
    when it serves neither. An embedding model on a `chat` instance cannot chat, and LiteLLM refuses
    embeddings from an `ollama_chat/` deployment ("Unmapped LLM provider"), so it gets none; on an
    `embedding` instance every model is taken for an embedding model, as its type says."""
    if instance.type == "embedding":
        return "embedding"
    embedding = is_embedding_model(name)
    if instance.type == "chat":
        return None if embedding else "chat"
    return "embedding" if embedding else "chat"


def _staleness(instance: Instance, entry: dict[str, Any], options: Options, warnings: list[str]) -> None:
    checked = entry.get("checked_at")
    if options.now is None or not isinstance(checked, (int, float)) or isinstance(checked, bool):
        return
    age = options.now - checked
    if age > options.health_ttl:
        warnings.append(f"{instance.id}: its model list is from a check {age_words(age)} old;"
                        " `ollamactl refresh` updates it")


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
    for instance in eligible(instances, options, warnings, "litellm"):
        entry = cache_entry(instance, health)
        if entry is None:
            warnings.append(f"{instance.id}: no health check on record, so its models are unknown and it is left"
                            " out; run `ollamactl refresh` first")
            continue
        names = model_list(entry)
        if not names:
            why = "was unhealthy at its last check" if not entry["healthy"] else "listed no models"
            if not entry["healthy"] and entry.get("error"):
                why += f" ({comment_safe(str(entry['error']))})"
            warnings.append(f"{instance.id}: {why}, so it is left out; run `ollamactl refresh` to check it again")
            continue
        _staleness(instance, entry, options, warnings)
        added = False
        for name in names:
            if wanted and normalise_model(name) != wanted:
                continue
            kind = deployment_kind(instance, name)
            if kind is None or (options.request_type and kind != options.request_type):
                continue
            entries.setdefault(name, []).append((instance, kind, name))
            added = True
        if added:
            used.append(instance)
    if not entries:
        raise nothing_to_export("no instance in the health cache has a matching model", instances, options, "litellm",
                       warnings)

    host, port = split_listen(options.listen)
    warnings += listen_warnings(options)
    lines = [
        f"# LiteLLM proxy config written by `{command_line('litellm', options)}`.",
        "# Models come from ollamactl's health cache (`ollamactl refresh` updates it); regenerate after changes.",
        f"# Use: {MASTER_KEY_VARIABLE}=sk-... litellm --config {target(options)} --host {host} --port {port}",
        "# (clients then send Authorization: Bearer <that master key>)",
        "model_list:",
    ]
    ranks = tier_ranks(used)
    for name in sorted(entries):
        for instance, kind, raw in entries[name]:
            prefix = "ollama_chat" if kind == "chat" else "ollama"
            lines += [
                f"  - model_name: {yaml_str(raw)}",
                "    litellm_params:",
                f"      model: {yaml_str(f'{prefix}/{raw}')}",
                f"      api_base: {yaml_str(instance.url)}",
            ]
            variable = key_variable_of(instance)
            if variable:
                lines.append(f"      api_key: {yaml_str('os.environ/' + variable)}")
            lines.append(f"      weight: {instance.weight}")
            if ranks:
                lines.append(f"      order: {ranks[instance.id] + 1}")
            if instance.max_inflight:
                lines.append(f"      max_parallel_requests: {instance.max_inflight}")
            lines += [
                "    model_info:",
                f"      mode: {yaml_str(kind)}",
                f"      ollamactl_instance: {yaml_str(instance.id)}",
            ]
    warnings += key_warnings(used, "LiteLLM")
    embedding_keyed = sorted({instance.id for entries_ in entries.values() for instance, kind, _ in entries_
                              if kind == "embedding" and key_variable_of(instance)})
    if embedding_keyed:
        warnings.append(f"{', '.join(embedding_keyed)}: LiteLLM before 1.109 sends no API key on Ollama embedding"
                        " calls, so there their embedding entries are refused (401); use LiteLLM 1.109 or later")
    lines += [
        "litellm_settings:",
        "  drop_params: true  # LiteLLM's Ollama provider refuses what it cannot map (the SDK's encoding_format)",
        "general_settings:",
        f"  master_key: {yaml_str('os.environ/' + MASTER_KEY_VARIABLE)}  # the proxy refuses to start without one",
        "router_settings:",
        f"  routing_strategy: {yaml_str(litellm_strategy(options.strategy))}",
        *(f"  {name}: {value}" for name, value in LITELLM_RESILIENCE.items()),
    ]
    aliases = {}
    for name in sorted(entries):
        short = name[: -len(":latest")] if name.endswith(":latest") else None
        if short and short not in entries:
            aliases[short] = name
    if aliases:  # clients may ask for `llama3.2` when /api/tags says `llama3.2:latest`
        lines.append("  model_group_alias:")
        lines += [f"    {yaml_str(short)}: {yaml_str(name)}" for short, name in aliases.items()]
    if options.strategy in LITELLM_SUBSTITUTES:
        warnings.append(LITELLM_SUBSTITUTES[options.strategy])
    return Exported("\n".join(lines) + "\n", warnings)


def litellm_strategy(strategy: str) -> str:
    return LITELLM_STRATEGIES.get(strategy, "simple-shuffle")


# ---------------------------------------------------------------------------------------------
# JSON


def _health_json(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    listed: list[Any] = entry["models"] if isinstance(entry.get("models"), list) else []
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
        if options.model and not serves_model(instance, health, options.model):
            continue
        rows.append({**instance.public(), "health": _health_json(cache_entry(instance, health))})
    data = {"schema": JSON_SCHEMA, "strategy": options.strategy, "instances": rows}
    return Exported(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", [])
