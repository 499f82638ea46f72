"""The core: everything ollamactl does, without printing, Typer or rich. It never imports the CLI.

fleet (`Fleet`, the one front door: every command and library call goes through it) over these
packages, each named for what it owns:
registry (the instances and the TOML file), state (what processes share: cache, cursors, breaker,
leases, metrics; on files or Redis), health (probes, freshness, liveness, the breaker), routing
(from a request to instances: selection, the pick memo, leases), proxy (generate, embed and exec
sent to the fleet with failover), models (where each model is; pull, sync, rm, load plans),
export (LiteLLM, nginx, HAProxy, JSON), metrics (what each instance served, and `bench`'s speeds);
and the modules they share: errors (error types and exit codes), settings (every `[settings]`
default and the one check of every number), params (the rules for other arguments), paths (where
the files live), http (client settings, headers and errors for every call to a server),
server_json (the one parser of servers' JSON), records (NamedTuple's class syntax without typing),
discover (finding servers on hosts and networks). `__version__` is here, where the core's requests
say it (User-Agent); the package exports it.
"""

__version__ = "0.1.0"
