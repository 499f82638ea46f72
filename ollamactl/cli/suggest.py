"""What a mistyped command or option is said to be (`lisst` -> `list`, `--mod` -> `--model`), in the
words of the Typer app's usage errors (cli/app.py). The fast route leaves every usage error to the
app, so each command line reads the same on both routes. difflib loads only on an error."""

from __future__ import annotations

from ollamactl import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one choice `word` most likely meant: the only one it begins (`--mod` -> `--model`), else
    the nearest by spelling (`lisst` -> `list`), else None."""
    known = list(dict.fromkeys(choices))
    started = [choice for choice in known if choice.startswith(word) and word not in ("-", "--")]
    if len(started) == 1:
        return started[0]
    import difflib

    near = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return near[0] if near else None


def unknown_option(word: str, options: Iterable[str], command: str) -> UsageError:
    """`no such option: --mod (did you mean --model?); see `ollamactl pick --help``."""
    name = word.split("=", 1)[0]
    match = closest(name, [option for option in options if option.startswith("--") == name.startswith("--")])
    said = f" (did you mean {match}?)" if match else ""
    return UsageError(f"no such option: {name}{said}", f"see `{command} --help`")


def unknown_command(word: str, commands: Iterable[str]) -> UsageError:
    """`no such command 'lisst' (did you mean list?); see `ollamactl --help``."""
    match = closest(word, commands)
    said = f" (did you mean {match}?)" if match else ""
    return UsageError(f"no such command {word!r}{said}", "see `ollamactl --help`")
