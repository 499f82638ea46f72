"""ollamactl: one registry, health view and router for a fleet of Ollama servers.

As a library: `from ollamactl import Fleet` (see ollamactl.core.fleet), with the errors it raises
(every one an `OllamactlError`; bad arguments an `InvalidValue`, a `UsageError`), the records it
returns, the names its arguments take (`STRATEGIES`, `FORMATS`, ...) and the rules it checks them
by (`checked_number`, `checked_model`, ...). This is the whole contract: the command line uses
nothing else of the core. Each name is imported on first use, so `import ollamactl` (and the
`pick` fast path) stays cheap: no httpx, asyncio or tomlkit until a name that needs them is used.

Packages: core (the work, callable without the command line), cli (the command line: parsing and
rendering), sim (a loopback Ollama stand-in); model_names (the one rule for model names, shared by
the core and the simulator), timefmt (times in words and RFC 3339, shared by the core's messages
and the command line's tables).
"""

from ollamactl.core import __version__

_HOMES = {  # name -> the module under ollamactl.core defining it ("module:attribute" when named otherwise there)
    "Fleet": "fleet",
    "OllamactlError": "errors", "UsageError": "errors", "InvalidValue": "errors", "RegistryError": "errors",
    "Said": "errors", "NoInstanceError": "errors", "BusyError": "errors", "ExitCode": "errors",
    "ModelMissing": "routing.router", "Request": "routing.router", "Decision": "routing.router",
    "STRATEGIES": "routing.selection", "REQUEST_TYPES": "routing.selection",
    "OllamaError": "http", "AllFailed": "http", "Timeouts": "http",
    "NothingToExport": "export.common", "Exported": "export.common", "DEFAULT_LISTEN": "export.common",
    "FORMATS": "export.build",
    "CommandError": "proxy.child",
    "Instance": "registry.instances", "Registry": "registry.instances", "TYPES": "registry.instances",
    "BACKUP": "registry.instances",
    "CLIENT_KEY_VAR": "registry.keys", "sent_key": "registry.keys",
    "respelled_host": "registry.urls", "unresolvable_host": "registry.lookup", "check_key_source": "registry.edits",
    "HealthResult": "health.probe",
    "Survey": "models.ops", "Outcome": "models.ops", "Step": "models.ops", "PullProgress": "models.ops",
    "DEFAULT_PULL_CONCURRENCY": "models.ops",
    "GenerateRequest": "proxy.generate", "Completion": "proxy.generate",
    "EmbedRequest": "proxy.embed", "EmbedSummary": "proxy.embed",
    "Lease": "routing.leases",
    "Found": "discover", "url_order": "discover",
    "speed_weights": "metrics.speed:weights", "exposition": "metrics.report",
    "checked_number": "settings:checked", "checked_model": "params:model", "checked_models": "params:models",
    "JsonRefused": "server_json:Refused", "load_json": "server_json:loads",
    "EXIT_MEANINGS": "errors", "DEFAULT_PORT": "registry", "DEFAULT_URL": "registry.instances",
    "SETTING_DEFAULTS": "settings:DEFAULTS", "NUMBER_RULES": "settings:NUMBERS",
    "DISCOVER_TIMEOUT": "discover:DEFAULT_TIMEOUT", "DISCOVER_CONNECT_TIMEOUT": "discover:DEFAULT_CONNECT_TIMEOUT",
    "DISCOVER_CONCURRENCY": "discover:DEFAULT_CONCURRENCY", "BENCH_TOKENS": "metrics.speed:DEFAULT_TOKENS",
    "batched": "proxy.embed",
    "DEFAULT_TRIES": "settings", "DEFAULT_BATCH_SIZE": "settings", "DEFAULT_PER_INSTANCE": "settings",
}
__all__ = ["__version__", *_HOMES]

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - what a type checker sees of each lazy name (tests/test_cli_contract.py)
    from ollamactl.core.discover import DEFAULT_CONCURRENCY as DISCOVER_CONCURRENCY
    from ollamactl.core.discover import DEFAULT_CONNECT_TIMEOUT as DISCOVER_CONNECT_TIMEOUT
    from ollamactl.core.discover import DEFAULT_TIMEOUT as DISCOVER_TIMEOUT
    from ollamactl.core.discover import Found, url_order
    from ollamactl.core.errors import (
        EXIT_MEANINGS,
        BusyError,
        ExitCode,
        InvalidValue,
        NoInstanceError,
        OllamactlError,
        RegistryError,
        Said,
        UsageError,
    )
    from ollamactl.core.export.build import FORMATS
    from ollamactl.core.export.common import DEFAULT_LISTEN, Exported, NothingToExport
    from ollamactl.core.fleet import Fleet
    from ollamactl.core.health.probe import HealthResult
    from ollamactl.core.http import AllFailed, OllamaError, Timeouts
    from ollamactl.core.metrics.report import exposition
    from ollamactl.core.metrics.speed import DEFAULT_TOKENS as BENCH_TOKENS
    from ollamactl.core.metrics.speed import weights as speed_weights
    from ollamactl.core.models.ops import DEFAULT_PULL_CONCURRENCY, Outcome, PullProgress, Step, Survey
    from ollamactl.core.params import model as checked_model
    from ollamactl.core.params import models as checked_models
    from ollamactl.core.proxy.child import CommandError
    from ollamactl.core.proxy.embed import EmbedRequest, EmbedSummary, batched
    from ollamactl.core.proxy.generate import Completion, GenerateRequest
    from ollamactl.core.registry import DEFAULT_PORT
    from ollamactl.core.registry.edits import check_key_source
    from ollamactl.core.registry.instances import BACKUP, DEFAULT_URL, TYPES, Instance, Registry
    from ollamactl.core.registry.keys import CLIENT_KEY_VAR, sent_key
    from ollamactl.core.registry.lookup import unresolvable_host
    from ollamactl.core.registry.urls import respelled_host
    from ollamactl.core.routing.leases import Lease
    from ollamactl.core.routing.router import Decision, ModelMissing, Request
    from ollamactl.core.routing.selection import REQUEST_TYPES, STRATEGIES
    from ollamactl.core.server_json import Refused as JsonRefused
    from ollamactl.core.server_json import loads as load_json
    from ollamactl.core.settings import DEFAULT_BATCH_SIZE, DEFAULT_PER_INSTANCE, DEFAULT_TRIES
    from ollamactl.core.settings import DEFAULTS as SETTING_DEFAULTS
    from ollamactl.core.settings import NUMBERS as NUMBER_RULES
    from ollamactl.core.settings import checked as checked_number


def __getattr__(name):  # type: ignore[no-untyped-def]
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ollamactl' has no attribute {name!r}")
    module, _, attribute = home.partition(":")
    value = getattr(__import__(f"ollamactl.core.{module}", fromlist=[name]), attribute or name)
    globals()[name] = value
    return value


def __dir__():  # type: ignore[no-untyped-def]
    return sorted([*globals(), *_HOMES])
