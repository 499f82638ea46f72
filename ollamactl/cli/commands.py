"""The command table, read without Typer: which module defines each command, and which commands
also have a Typer-free route (a body callable with the parsed options, see cli/fast_route.py).

`COMMANDS`: command -> the module (dotted, under ollamactl.cli) whose Typer sub-app defines it, in the order
of `--help`; cli/app.py loads only the invoked command's module from it. `BODIES`: command ->
"module:function" of the body its Typer command forwards every parameter to (by keyword, looked up
by `body` at each call, as the fast route does; `forwarded` makes a Typer declaration do that);
scripts/gen_completions.py writes those commands' option specs into cli/command_specs.py, and the
launcher answers ordinary invocations of them without Typer.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover  # typing costs the pick fast route (tests/test_pick.py HEAVY)
    from collections.abc import Callable
    from typing import Any

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


def body(command: str) -> Callable[..., Any]:
    """The function `command`'s Typer declaration forwards its parameters to (see BODIES)."""
    module, function = BODIES[command].split(":")
    return getattr(__import__(f"ollamactl.cli.{module}", fromlist=[function]), function)  # importlib costs pick


def forwarded(command: str) -> Callable[[Callable[..., None]], Callable[..., Any]]:
    """Make a Typer declaration (parameters, help and docstring only) call `command`'s body with the
    values Typer parsed, by keyword, as the fast route calls it: the options are listed in the
    declaration and in the body's signature, not restated a third time in a forwarding call."""

    import functools  # here: the fast route imports this module, and only Typer's declarations need it

    def declare(declaration: Callable[..., None]) -> Callable[..., Any]:
        @functools.wraps(declaration)  # Typer reads the declaration's signature through __wrapped__
        def forward(**values: Any) -> Any:
            return body(command)(**values)

        return forward

    return declare
