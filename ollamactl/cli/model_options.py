"""Checking `run`'s model options before anything is sent: `-o KEY=VALUE` against the types Ollama
gives its options, and `--keep-alive` against the duration forms Ollama accepts.

The option table is Ollama's (docs/modelfile.md's parameters plus the runtime options of the API's
`options` object). A known option with a value of the wrong type is a usage error (exit 2) instead of
a server's 400; an unknown one is sent as given, with a warning that suggests the closest known name.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from ollamactl.core.errors import UsageError

INT, FLOAT, BOOL, STRINGS = "a whole number", "a number", "true or false", "text"

OPTION_TYPES = {
    # docs/modelfile.md, "Valid Parameters and Values"
    "mirostat": INT, "mirostat_eta": FLOAT, "mirostat_tau": FLOAT, "num_ctx": INT, "repeat_last_n": INT,
    "repeat_penalty": FLOAT, "temperature": FLOAT, "seed": INT, "stop": STRINGS, "num_predict": INT,
    "top_k": INT, "top_p": FLOAT, "min_p": FLOAT,
    # the API's other runtime options
    "num_keep": INT, "typical_p": FLOAT, "presence_penalty": FLOAT, "frequency_penalty": FLOAT,
    "penalize_newline": BOOL, "numa": BOOL, "num_batch": INT, "num_gpu": INT, "main_gpu": INT,
    "use_mmap": BOOL, "num_thread": INT,
}  # fmt: skip

# Go's time.ParseDuration: one or more number+unit pairs, optionally signed ("5m", "1h30m", "-1s", "1.5h").
_DURATION = re.compile(r"[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+")


def _fits(kind: str, value: Any) -> bool:
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == FLOAT:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == BOOL:
        return isinstance(value, bool)
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def typed_options(pairs: Iterable[tuple[str, Any]], warn: Callable[[str], None]) -> dict[str, Any]:
    """The options to send, from `-o` pairs already parsed to JSON-ish values: known ones checked for
    type (a UsageError naming the option otherwise), `stop` gathered into a list (repeatable),
    unknown ones kept with a warning."""
    options: dict[str, Any] = {}
    for key, value in pairs:
        kind = OPTION_TYPES.get(key)
        if kind is None:
            close = difflib.get_close_matches(key, OPTION_TYPES, n=1)
            guess = f"; did you mean {close[0]!r}?" if close else ""
            warn(f"-o {key}: not an option Ollama knows; sending it anyway (the server ignores unknown options){guess}")
            options[key] = value
            continue
        if kind == STRINGS and not isinstance(value, (str, list)):
            value = str(value)  # -o stop=42 stops at the text "42"
        if not _fits(kind, value):
            raise UsageError(f"-o {key}={_shown(value)}: {key} takes {kind}", f"e.g. -o {key}={_example(kind)}")
        if key == "stop":
            options.setdefault("stop", []).extend([value] if isinstance(value, str) else value)
        else:
            options[key] = value
    return options


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _example(kind: str) -> str:
    return {INT: "8192", FLOAT: "0.2", BOOL: "true"}.get(kind, "'###'")


def keep_alive_value(text: str | None) -> Any:
    """`--keep-alive` (of `run` and `load`) as Ollama takes it: None when not given, a number of
    seconds (`300`; `-1` keeps the model loaded, `0` unloads it) sent as a number, or a duration
    string in Go's form (`5m`, `1h30m`, `1.5h`, `300ms`); anything else is a UsageError."""
    if text is None:
        return None
    stripped = text.strip()
    if _DURATION.fullmatch(stripped):
        return stripped
    try:
        number = float(stripped)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise UsageError(f"--keep-alive {text!r} is not a duration",
                         "use seconds (3600, -1 to keep it loaded, 0 to unload) or a duration such as 5m or 1h30m")
    return int(number) if number.is_integer() else number
