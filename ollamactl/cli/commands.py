"""The command table, read without Typer: which module defines each command, and which commands
also have a Typer-free route (a body callable with the parsed options, see cli/fast_route.py).

`COMMANDS`: command -> the module (dotted, under ollamactl.cli) whose Typer sub-app defines it, in the order
of `--help`; cli/app.py loads only the invoked command's module from it. `BODIES`: command ->
"module:function" of the body its Typer command forwards every parameter to (by keyword, through
the module attribute); scripts/gen_completions.py writes those commands' option specs into
cli/command_specs.py, and the launcher answers ordinary invocations of them without Typer.
"""

from __future__ import annotations

COMMANDS = {
    **dict.fromkeys(("add", "list", "update", "enable", "disable", "remove", "paths"), "registry.registry_cmds"),
    "discover": "registry.discover_cmd",
    **dict.fromkeys(("health", "refresh", "models"), "health.health_cmds"),
    "pick": "routing.pick_cmd",
    "exec": "routing.exec_cmd",
    **dict.fromkeys(("ps", "pull", "sync", "rm", "load", "unload"), "models.model_cmds"),
    "run": "routing.run_cmd",
    "embed": "routing.embed_cmd",
    "metrics": "health.metrics_cmd",
    "top": "health.top_cmd",
    "bench": "routing.bench_cmd",
    "completion": "integrations.completion_cmd",
    "export": "integrations.export_cmd",
    "simulate": "integrations.simulate_cmd",
}

BODIES = {
    "list": "registry.quick:list_instances",
    "paths": "registry.quick:paths",
    "health": "health.health_show:health",
    "refresh": "health.health_show:refresh",
    "models": "health.health_show:models",
    "ps": "models.ps_show:ps",
    "pick": "routing.pick_exec:pick",
    "run": "routing.run_stream:run",
    "embed": "routing.embed_batches:embed",
}
