"""`ollamactl completion`: the shell completion scripts for bash, zsh and fish.

Completion scripts come from Typer's own `_OLLAMACTL_COMPLETE=source_<shell>` route. The app is
built with `add_completion=False`, which leaves Typer's completion classes unregistered, so cli.app
registers them (`completion_init`) when it is imported: the scripts call
`_OLLAMACTL_COMPLETE=complete_<shell> ollamactl` on every TAB, and that must find them too.
"""

from __future__ import annotations

import typer

from ollamactl import UsageError
from ollamactl.cli.completers import choices

app = typer.Typer(add_completion=False)  # this module's commands (cli.app composes them; completion: its own command)

SHELLS = ("bash", "zsh", "fish")
PROG_NAME = "ollamactl"
COMPLETE_VAR = "_OLLAMACTL_COMPLETE"


def _shell_completion():  # type: ignore[no-untyped-def]
    try:  # Typer >= 0.20 vendors Click
        from typer._click import shell_completion
    except ImportError:  # pragma: no cover - older Typer on Click
        from click import shell_completion
    return shell_completion


def completion_script(shell: str) -> str:
    """The completion script for `shell`: what `_OLLAMACTL_COMPLETE=source_<shell> ollamactl` prints,
    without the leading blank line (zsh needs `#compdef` on line 1), ending in one newline; for zsh
    also the case of a script autoloaded from $fpath (see _zsh_autoload), for bash quoting (BASH_QUOTING)."""
    if shell not in SHELLS:
        raise UsageError(f"unsupported shell {shell!r}", f"choose one of: {', '.join(SHELLS)}")
    from typer.main import get_command

    completion_class = _shell_completion().get_completion_class(shell)
    if completion_class is None:  # pragma: no cover - completion_init() registers all three
        raise UsageError(f"this Typer cannot complete {shell}")
    # The script only names the program and the variable; which commands exist is asked at TAB time.
    completer = completion_class(get_command(app), {}, PROG_NAME, COMPLETE_VAR)
    source = completer.source().strip("\n") + "\n"
    if shell == "zsh":
        source = _zsh_autoload(source, completer.func_name)
    if shell == "bash":
        source = _bash_quoted(source)
    return source


# After Typer's COMPREPLY: bash inserts it as it is, so a name with a space (`box one`) became two
# words; quoted for the shell, unless the user opened a quote (then readline closes it).
BASH_QUOTING = (
    "    if [[ ${COMP_WORDS[COMP_CWORD]} != [\\\"\\']* ]]; then  # quoted for the shell, unless in a quote\n"
    "        local i\n"
    '        for i in "${!COMPREPLY[@]}"; do printf -v "COMPREPLY[i]" %q "${COMPREPLY[i]}"; done\n'
    "    fi\n"
)


def _bash_quoted(source: str) -> str:
    """Typer's bash script with BASH_QUOTING after the line that fills COMPREPLY."""
    offered = "_OLLAMACTL_COMPLETE=complete_bash $1 ) )\n"
    if offered not in source:  # pragma: no cover - a Typer with another template
        return source
    return source.replace(offered, offered + BASH_QUOTING, 1)


def _zsh_autoload(source: str, function: str) -> str:
    """Make Typer's zsh script keep apostrophes and also work when autoloaded from $fpath
    (site-functions/_ollamactl).

    Typer escapes a ' in a description as '' inside single quotes, which zsh reads as a literal
    quote only with RC_QUOTES: the completion function turns it on for itself.

    Typer's script only runs `compdef`, which suits a sourced file; autoloaded as `_ollamactl`, it
    would complete nothing on the first TAB of every session. So it also completes when it runs as
    the `_ollamactl` function (the check cobra's zsh scripts use).
    """
    opening = f"{function}() {{\n"
    source = source.replace(opening, opening + "  setopt local_options rc_quotes  # '' is a quote in descriptions\n", 1)
    register = f"compdef {function} {PROG_NAME}\n"
    if not source.endswith(register):  # pragma: no cover - a Typer with another template
        return source
    return source + (
        f"if [[ $funcstack[1] == _{PROG_NAME} ]]; then\n"
        f"  {function} \"$@\"  # autoloaded from $fpath: complete this TAB too\n"
        "fi\n"
    )


@app.command()
def completion(
    shell: str = typer.Argument(..., metavar="SHELL", autocompletion=choices(SHELLS), show_default=False,
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
