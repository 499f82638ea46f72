"""Parse a command line against a command's generated spec (cli/command_specs.py), without Typer.

Only ordinary command lines are answered here: every option known, every value of its type, the
arguments complete. For anything else (`--help`, `--`, an unknown or combined option, a value that
looks like an option or is not of its type, an argument too many or missing) `parse` returns None
and the command line goes to Typer, which stays the authority for help and for every usage
error's words. No imports (not even typing): the launcher runs it before anything else loads.

A spec: `options` maps each spelling to (parameter, kind, repeatable), kind being the value a
flag sets (True/False) or the type of the value it takes ("str", "int", "float"); `arguments`
lists (parameter, type, nargs, required) in order (nargs -1 takes the rest); `defaults` holds
what the command's body receives for a parameter not given.
"""

from __future__ import annotations

_CONVERT = {"str": str, "int": int, "float": float}


def parse(spec: dict, argv: list[str]) -> dict | None:
    """The body's keyword arguments for `argv`, or None when Typer must parse it."""
    options = spec["options"]
    values = dict(spec["defaults"])
    words: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        if word == "-" or not word.startswith("-"):
            words.append(word)
            continue
        name, attached = word, None
        if word.startswith("--"):
            if "=" in word:
                name, attached = word.split("=", 1)
        elif len(word) > 2:
            name, attached = word[:2], word[2:]  # -ovalue; -vx (two flags) is left to Typer
        if name not in options:
            return None
        parameter, kind, repeatable = options[name]
        if isinstance(kind, bool):
            if attached is not None:
                return None
            values[parameter] = kind
            continue
        if attached is None:
            if index >= len(argv) or _looks_like_option(argv[index]):
                return None
            attached = argv[index]
            index += 1
        value = _convert(kind, attached)
        if value is None:
            return None
        values[parameter] = [*(values[parameter] or ()), value] if repeatable else value
    for parameter, kind, nargs, required in spec["arguments"]:
        taken, words = (words, []) if nargs == -1 else (words[:1], words[1:])
        if not taken:
            if required:
                return None
            continue
        converted = [_convert(kind, word) for word in taken]
        if None in converted:
            return None
        values[parameter] = converted if nargs == -1 else converted[0]
    return None if words else values


def _looks_like_option(word: str) -> bool:
    return word.startswith("-") and word != "-"


def _convert(kind: str, word: str) -> object:
    try:
        return _CONVERT[kind](word)
    except ValueError:
        return None
