"""The command table, read without Typer: which module defines each command, and which commands
also have a Typer-free route (a body callable with the parsed options, see cli/fast_route.py).

`COMMANDS`: command -> the module under ollamactl/cli whose Typer sub-app defines it, in the order
of `--help`; cli/app.py loads only the invoked command's module from it. `BODIES`: command ->
"module:function" of the body its Typer command forwards every parameter to (by keyword, through
the module attribute); scripts/gen_completions.py writes those commands' option specs into
cli/command_specs.py, and the launcher answers ordinary invocations of them without Typer.
"""

from __future__ import annotations

COMMANDS = {
    **dict.fromkeys(("add", "list", "update", "enable", "disable", "remove", "paths"), "registry_cmds"),
    "discover": "discover_cmd",
    **dict.fromkeys(("health", "refresh", "models"), "health_cmds"),
    "pick": "pick_cmd",
    "exec": "exec_cmd",
    **dict.fromkeys(("ps", "pull", "sync", "rm", "load", "unload"), "model_cmds"),
    "run": "run_cmd",
    "embed": "embed_cmd",
    "metrics": "metrics_cmd",
    "top": "top_cmd",
    "bench": "bench_cmd",
    "completion": "completion_cmd",
    "export": "export_cmd",
    "simulate": "simulate_cmd",
}

BODIES = {
    "list": "quick:list_instances",
    "paths": "quick:paths",
    "health": "health_show:health",
    "refresh": "health_show:refresh",
    "models": "health_show:models",
    "ps": "ps_show:ps",
    "run": "run_stream:run",
    "embed": "embed_batches:embed",
}
