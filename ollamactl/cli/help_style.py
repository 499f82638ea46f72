"""One style for every command's help, applied when the root group hands a command out.

Paragraphs are reflowed to the terminal's width (Typer's rich help keeps the docstring's breaks).

Facts a help text states are filled in from their one source, so help cannot drift from the code:
a docstring (which cannot be an f-string) writes `{ExitCode.NO_INSTANCE}` for an exit code,
`{EXIT_CODES}` for the whole list, `{DEFAULT_PORT}` for Ollama's port, `{DEFAULTS[strategy]}` for
a setting's default; an option's help is an f-string, with `setting_default(key)` for an option
that defaults to a setting.

Typer writes a required argument as `{URL}`, an optional one as `[prompt]...` and an option's
value as its type (`<str>`, `<int range>`). Here every value gets a metavar in capitals (its
own, or its name), and usage lines read `ollamactl run [OPTIONS] MODEL [PROMPT]...`: `[...]`
for optional, `...` for several. Commands added later get the same style without doing anything.
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperArgument, TyperCommand

from ollamactl import DEFAULT_PORT, EXIT_MEANINGS, SETTING_DEFAULTS, ExitCode

_FACT = re.compile(r"\{(ExitCode\.[A-Z_]+|EXIT_CODES|DEFAULT_PORT|DEFAULTS\[[a-z_]+\])\}")


class StyledCommand(TyperCommand):
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = ["[OPTIONS]"] if any(not isinstance(p, TyperArgument) for p in self.get_params(ctx)) else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar.removesuffix("...") if param.metavar else (param.name or "").upper()
                several = "..." if param.nargs != 1 else ""
                pieces.append(f"{name}{several}" if param.required else f"[{name}]{several}")
        return pieces


def tidy(command: Any) -> Any:
    """Give `command` the house style (once): metavars for every value, usage as above."""
    if type(command) is TyperCommand:
        command.help = rendered(command.help)
        for param in command.params:
            if param.metavar:
                continue
            if isinstance(param, TyperArgument):
                param.metavar = (param.name or "value").upper()
            elif not (getattr(param, "is_flag", False) or getattr(param, "count", False)):  # an option's
                # metavar from its longest name: --first-byte-timeout -> FIRST_BYTE_TIMEOUT
                param.metavar = max(param.opts, key=len).lstrip("-").replace("-", "_").upper()
        command.__class__ = StyledCommand
    return command


def rendered(text: str | None) -> str | None:
    """A docstring as help: its facts filled in (see the module docstring), its paragraphs reflowed."""
    return reflow(_FACT.sub(lambda found: _fact(found[1]), text) if text else text)


def _fact(name: str) -> str:
    if name == "EXIT_CODES":
        return ", ".join(f"{code} {meaning}" for code, meaning in EXIT_MEANINGS.items())
    if name == "DEFAULT_PORT":
        return str(DEFAULT_PORT)
    if name.startswith("DEFAULTS["):
        return _shown(SETTING_DEFAULTS[name[len("DEFAULTS["):-1]])
    return str(getattr(ExitCode, name.removeprefix("ExitCode.")))


def setting_default(key: str) -> str:
    """How an option's help names the `[settings]` value it defaults to: `(default: the wait setting, 60)`."""
    return f"(default: the {key} setting, {_shown(SETTING_DEFAULTS[key])})"


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def reflow(text: str | None) -> str | None:
    """Docstring paragraphs as single lines, so the terminal wraps them (Typer's rich help keeps
    every source line break); a paragraph starting with \\b keeps its lines, as in Click."""
    if not text:
        return text
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
                       for p in paragraphs)
