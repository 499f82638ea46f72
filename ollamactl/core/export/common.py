"""What every export format shares: the options, the result, and the rules for which instances go in.

Pure functions (see export.py for the rules of every format): instances + the health cache in,
decisions + warnings out. Used by export.py (LiteLLM, JSON) and by the nginx and HAProxy writers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ollamactl.core.errors import NoInstanceError, Said, UsageError
from ollamactl.core.registry import DEFAULT_PORT
from ollamactl.core.registry.instances import Instance
from ollamactl.model_names import normalise_model

DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
_EMBEDDING_HINTS = ("embed", "all-minilm", "bge-", "bge:", "paraphrase-multilingual")


@dataclass
class Exported:
    """The text to write and the warnings to show the user (on stderr)."""

    text: str
    warnings: list[str] = field(default_factory=list)
    secrets: str | None = None  # nginx with a secrets file: its text (keys!), to be written 0600


@dataclass(frozen=True)
class Options:
    model: str | None = None  # only instances (LiteLLM: entries) serving this model
    request_type: str | None = None  # chat | embedding
    include_all: bool = False  # also disabled instances
    strategy: str = "round-robin"
    health_ttl: float = 300.0  # older cache entries get a warning
    now: float | None = None  # epoch seconds, for the staleness warning (None: no such warning)
    listen: str = DEFAULT_LISTEN  # ADDR:PORT the gateway listens on
    output: str | None = None  # the path the text goes to (named in the header), None: stdout
    secrets_file: str | None = None  # nginx: where the keys go (absolute path)
    keys: dict[str, str] = field(default_factory=dict)  # nginx with secrets_file: instance id -> key


def tier_ranks(instances: Sequence[Instance]) -> dict[str, int]:
    """Each instance's priority tier rank among `instances` (0: the best tier present), for the engines'
    fallback flags (nginx/HAProxy `backup`, LiteLLM `order`); empty when they all share one tier."""
    tiers = sorted({i.priority for i in instances})
    return {i.id: tiers.index(i.priority) for i in instances} if len(tiers) > 1 else {}


def key_variable(instance: Instance) -> str:
    """The env var that should hold a stored key: OLLAMA_KEY_<ID> (upper case, `_` for others)."""
    return "OLLAMA_KEY_" + re.sub(r"[^A-Z0-9_]", "_", instance.id.upper())


def key_variable_of(instance: Instance) -> str | None:
    """The env var a gateway reads the instance's key from: its api_key_env, OLLAMA_KEY_<ID> for a
    stored key, None without a key."""
    if instance.api_key_env:
        return instance.api_key_env
    return key_variable(instance) if instance.api_key else None


def key_warnings(instances: Sequence[Instance], engine: str) -> list[str]:
    """Stored keys are not written out: say which variable to export, and when two would share one."""
    warnings = []
    readers: dict[str, list[str]] = {}
    for instance in instances:
        if instance.api_key and not instance.api_key_env:
            readers.setdefault(key_variable(instance), []).append(instance.id)
            warnings.append(f"{instance.id}: its API key is stored in the registry and is not written out; the config"
                            f" reads it from ${key_variable(instance)}, so export that variable where {engine} runs")
    for variable, ids in readers.items():
        if len(ids) > 1:
            warnings.append(Said("{ids} would both read ${variable}; give one of them its own variable with"
                                 " `ollamactl update ID {api_key_env=VAR}`", ids=" and ".join(ids), variable=variable))
    return warnings


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
    """A guess from the name (the health cache has no model family)."""
    base = normalise_model(name).rsplit("/", 1)[-1].lower()
    return any(hint in base for hint in _EMBEDDING_HINTS)


def serves_model(instance: Instance, health: dict[str, Any], model: str) -> bool:
    wanted = normalise_model(model)
    return any(normalise_model(name) == wanted for name in model_list(cache_entry(instance, health)))


def eligible(instances: Sequence[Instance], options: Options, warnings: list[str], fmt: str) -> list[Instance]:
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


def nothing_to_export(what: str, instances: Sequence[Instance], options: Options, fmt: str,
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
        hint = Said(hint + ", or pass {include_disabled=True} to include disabled instances")
    return NothingToExport(f"nothing to export{scope}: {what}", hint, warnings)


def command_line(fmt: str, options: Options) -> str:
    words = ["ollamactl", "export", "--format", fmt]
    if options.model:
        words += ["--model", options.model]
    if options.request_type:
        words += ["--type", options.request_type]
    if options.include_all:
        words.append("--all")
    if options.listen != DEFAULT_LISTEN:
        words += ["--listen", options.listen]
    if options.secrets_file:
        words += ["--secrets-file", options.secrets_file]
    if options.output:
        words += ["-o", options.output]
    return " ".join(comment_safe(w) for w in words)


def target(options: Options) -> str:
    """How the header names the exported file: its path, or PATH when it went to stdout."""
    return comment_safe(options.output) if options.output else "PATH"


def split_listen(listen: str) -> tuple[str, int]:
    """`127.0.0.1:8080` -> ("127.0.0.1", 8080); `[::1]:8080` -> ("::1", 8080).

    Raises UsageError for anything else: the address must be an IP address, the port 1-65535.
    """
    import ipaddress

    host, sep, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
        number = int(port) if sep and port.isdigit() else 0
    except ValueError:
        number = 0
    if not 0 < number < 65536 or (":" in host and not listen.startswith("[")):
        raise UsageError(Said("{listen} must be ADDR:PORT with an IP address ({given!r})", given=comment_safe(listen)),
                         f"for example {DEFAULT_LISTEN}, [::1]:{DEFAULT_PORT}, or 0.0.0.0:{DEFAULT_PORT}"
                         " for every interface")
    return str(address), number


def listen_warnings(options: Options) -> list[str]:
    """A warning when the gateway is asked to listen beyond loopback (it has no access control)."""
    import ipaddress

    host, _ = split_listen(options.listen)
    if ipaddress.ip_address(host).is_loopback:
        return []
    return [f"the gateway will listen on {options.listen}, reachable from other hosts, and has no access control;"
            f" restrict it with a firewall, or keep the default {DEFAULT_LISTEN}"]


def comment_safe(text: str) -> str:
    """Text for a one-line comment: printable, no line breaks."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)
