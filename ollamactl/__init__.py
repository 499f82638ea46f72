"""ollamactl: one registry, health view and router for a fleet of Ollama servers.

As a library: `from ollamactl import Fleet` (see ollamactl.core.fleet), with the errors it raises
(every one an `OllamactlError`; bad arguments an `InvalidValue`, a `UsageError`) and the records
it returns. Each name is imported on first use, so `import ollamactl` (and the `pick` fast path)
stays cheap: no httpx, asyncio or tomlkit until a name that needs them is used.

Packages: core (the work, callable without the command line), cli (the command line: parsing and
rendering), sim (a loopback Ollama stand-in); model_names (the one rule for model names, shared by
the core and the simulator).
"""

__version__ = "0.1.0"

_HOMES = {  # name -> the module defining it
    "Fleet": "fleet",
    "OllamactlError": "errors", "UsageError": "errors", "InvalidValue": "errors", "RegistryError": "errors",
    "NoInstanceError": "errors", "BusyError": "errors", "ExitCode": "errors",
    "ModelMissing": "routing.router", "Request": "routing.router", "Decision": "routing.router",
    "OllamaError": "http", "AllFailed": "http", "Timeouts": "http",
    "NothingToExport": "export.common", "Exported": "export.common",
    "CommandError": "proxy.child",
    "Instance": "registry.instances", "Registry": "registry.instances",
    "HealthResult": "health.probe",
    "Survey": "models.ops", "Outcome": "models.ops", "Step": "models.ops",
    "GenerateRequest": "proxy.generate", "Completion": "proxy.generate",
    "EmbedRequest": "proxy.embed", "EmbedSummary": "proxy.embed",
    "Lease": "routing.leases",
}
__all__ = ["__version__", *_HOMES]


def __getattr__(name):  # type: ignore[no-untyped-def]
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ollamactl' has no attribute {name!r}")
    value = getattr(__import__(f"ollamactl.core.{home}", fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__():  # type: ignore[no-untyped-def]
    return sorted([*globals(), *_HOMES])
