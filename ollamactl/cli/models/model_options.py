"""Checking `run`'s model options before anything is sent: `-o KEY=VALUE` against the types Ollama
gives its options, and `--keep-alive` against the duration forms Ollama accepts.

The option table is Ollama's (docs/modelfile.md's parameters plus the runtime options of the API's
`options` object). A known option with a value of the wrong type, or outside its range (OPTION_RANGES:
what the option means, and what the llama.cpp runner stores it in), is a usage error (exit 2) instead
of a server's 400 or a request it cannot honour; an unknown one is sent as given, with a warning that
suggests the closest known name. Every value is finite (see request_input.parse_option).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from ollamactl import UsageError

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

_I32 = 2**31 - 1
# Inclusive bounds (None: no upper bound but finiteness); an option missing here takes any finite value.
OPTION_RANGES: dict[str, tuple[float, float | None]] = {
    "mirostat": (0, 2), "mirostat_eta": (0, None), "mirostat_tau": (0, None), "num_ctx": (1, _I32),
    "repeat_last_n": (-1, _I32), "repeat_penalty": (0, None), "temperature": (0, None),
    "seed": (-(2**63), 2**63 - 1), "num_predict": (-2, _I32), "top_k": (0, _I32), "top_p": (0, 1),
    "min_p": (0, 1), "num_keep": (-1, _I32), "typical_p": (0, 1), "num_batch": (1, _I32),
    "num_gpu": (-1, _I32), "main_gpu": (0, _I32), "num_thread": (0, _I32),
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
        if key in OPTION_RANGES:
            _check_range(key, value, *OPTION_RANGES[key])
        if key == "stop":
            options.setdefault("stop", []).extend([value] if isinstance(value, str) else value)
        else:
            options[key] = value
    return options


def _check_range(key: str, value: float, low: float, high: float | None) -> None:
    if low <= value and (high is None or value <= high):
        return
    bounds = f"at least {low}" if high is None else f"from {low} to {high}"
    raise UsageError(f"-o {key}={_shown(value)}: {key} must be {bounds}", "give a value in that range")


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
