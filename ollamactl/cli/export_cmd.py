"""Shell and ecosystem commands: completion (bash, zsh, fish) and export (LiteLLM, nginx, HAProxy, JSON).

Completion scripts come from Typer's own `_OLLAMACTL_COMPLETE=source_<shell>` route. The app is
built with `add_completion=False`, which leaves Typer's completion classes unregistered, so this
module registers them (`completion_init`) when the app is imported: the scripts call
`_OLLAMACTL_COMPLETE=complete_<shell> ollamactl` on every TAB, and that must find them too.
"""

from __future__ import annotations

import typer
from typer.completion import completion_init

from ollamactl.cli.completers import complete_model
from ollamactl.core.errors import UsageError

app = typer.Typer()  # this module's commands; cli.app composes them

SHELLS = ("bash", "zsh", "fish")
PROG_NAME = "ollamactl"
COMPLETE_VAR = "_OLLAMACTL_COMPLETE"
REQUEST_TYPES = ("chat", "embedding")

completion_init()


def _shell_completion():  # type: ignore[no-untyped-def]
    try:  # Typer >= 0.20 vendors Click
        from typer._click import shell_completion
    except ImportError:  # pragma: no cover - older Typer on Click
        from click import shell_completion
    return shell_completion


def completion_script(shell: str) -> str:
    """The completion script for `shell`: what `_OLLAMACTL_COMPLETE=source_<shell> ollamactl` prints,
    without the leading blank line (zsh needs `#compdef` on line 1), ending in one newline; for zsh
    also the case of a script autoloaded from $fpath (see _zsh_autoload)."""
    if shell not in SHELLS:
        raise UsageError(f"unsupported shell {shell!r}", f"choose one of: {', '.join(SHELLS)}")
    from typer.main import get_command

    completion_class = _shell_completion().get_completion_class(shell)
    if completion_class is None:  # pragma: no cover - completion_init() registers all three
        raise UsageError(f"this Typer cannot complete {shell}")
    completer = completion_class(get_command(app), {}, PROG_NAME, COMPLETE_VAR)
    source = completer.source().strip("\n") + "\n"
    if shell == "zsh":
        source = _zsh_autoload(source, completer.func_name)
    return source


def _zsh_autoload(source: str, function: str) -> str:
    """Make Typer's zsh script also work when autoloaded from $fpath (site-functions/_ollamactl).

    Typer's script only runs `compdef`, which suits a sourced file; autoloaded as `_ollamactl`, it
    would complete nothing on the first TAB of every session. So it also completes when it runs as
    the `_ollamactl` function (the check cobra's zsh scripts use).
    """
    register = f"compdef {function} {PROG_NAME}\n"
    if not source.endswith(register):  # pragma: no cover - a Typer with another template
        return source
    return source + (
        f"if [[ $funcstack[1] == _{PROG_NAME} ]]; then\n"
        f"  {function} \"$@\"  # autoloaded from $fpath: complete this TAB too\n"
        "fi\n"
    )


def _complete_shell(incomplete: str) -> list[str]:
    return [shell for shell in SHELLS if shell.startswith(incomplete)]


@app.command()
def completion(
    shell: str = typer.Argument(..., metavar="SHELL", autocompletion=_complete_shell, show_default=False,
                                help="bash, zsh or fish."),
) -> None:
    """Print the shell completion script for bash, zsh or fish.

    Completion reads only the local registry and health cache, never the network.

    The wheel installs these scripts where bash-completion, zsh and fish look; to install one by hand:

    bash: ollamactl completion bash > ~/.local/share/bash-completion/completions/ollamactl

    zsh: ollamactl completion zsh > ~/.zfunc/_ollamactl (put fpath=(~/.zfunc $fpath) before compinit)

    fish: ollamactl completion fish > ~/.config/fish/completions/ollamactl.fish

    Example: source <(ollamactl completion bash)
    """
    typer.echo(completion_script(shell), nl=False)


# ---------------------------------------------------------------------------------------------
# export


def _complete_format(incomplete: str) -> list[str]:
    from ollamactl.core.export import FORMATS

    return [fmt for fmt in FORMATS if fmt.startswith(incomplete)]


def _complete_type(incomplete: str) -> list[str]:
    return [kind for kind in REQUEST_TYPES if kind.startswith(incomplete)]


@app.command()
def export(
    fmt: str = typer.Option(..., "--format", "-f", metavar="FORMAT", autocompletion=_complete_format,
                            show_default=False, help="litellm (config.yaml), nginx, haproxy or json."),
    model: str | None = typer.Option(None, "--model", "-m", autocompletion=complete_model,
                                     help="Only this model (LiteLLM), or only instances serving it."),
    request_type: str | None = typer.Option(None, "--type", "-t", autocompletion=_complete_type,
                                            help="Only chat or embedding instances (LiteLLM: entries)."),
    include_all: bool = typer.Option(False, "--all", "-a",
                                     help="Include disabled instances (nginx: down, HAProxy: disabled)."),
) -> None:
    """Print the fleet as a LiteLLM, nginx or HAProxy config, or as JSON.

    Built from the registry and the health cache: run `ollamactl refresh` first for current model lists.

    Keys stored in the registry are never written out; LiteLLM reads them from $OLLAMA_KEY_<ID>.

    LiteLLM routing: round-robin, weighted, random -> simple-shuffle; least-latency, warm -> latency-based-routing.

    JSON: {"schema": 1, "strategy": ..., "instances": [...]}, each instance with its last health check.

    Example: ollamactl export --format litellm > litellm.yaml && litellm --config litellm.yaml
    """
    import time

    from ollamactl.core import export as core
    from ollamactl.core import registry, state
    from ollamactl.core.errors import warn

    if fmt not in core.FORMATS:
        raise UsageError(f"unknown format {fmt!r}", f"choose one of: {', '.join(core.FORMATS)}")
    if request_type is not None and request_type not in REQUEST_TYPES:
        raise UsageError(f"unknown type {request_type!r}", f"choose one of: {', '.join(REQUEST_TYPES)}")
    if model is not None and not model.strip():
        raise UsageError("--model is empty", "give a model name such as llama3.2")
    reg = registry.load()
    health = state.read().get("health", {})
    options = core.Options(model=model, request_type=request_type, include_all=include_all,
                           strategy=str(reg.setting("strategy")), health_ttl=float(reg.setting("health_ttl")),
                           now=time.time())
    try:
        result = core.export(fmt, reg.instances, health if isinstance(health, dict) else {}, options)
    except core.NothingToExport as nothing:
        for message in nothing.warnings:
            warn(message)
        raise
    for message in result.warnings:
        warn(message)
    typer.echo(result.text, nl=False)
