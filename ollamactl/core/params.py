"""The rules for the arguments of `Fleet`'s methods that are not numbers (those: settings.checked):
text, instance references, model names. The library and the CLI share them; a refused argument is
an `InvalidValue` (exit 2) naming the parameter as the library calls it (the CLI shows its flag).
"""

from __future__ import annotations

from ollamactl.core.errors import InvalidValue
from ollamactl.model_names import normalise_model

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping, Sequence
    from typing import Any

_SHOWN = 80  # characters of a refused value quoted in the message


def shown(value: Any) -> str:
    """`value` as a message quotes it: its type and a bounded repr."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= _SHOWN else text[:_SHOWN] + '...'}"


def text(param: str, value: Any) -> str:
    """`value` if it is a string (what it may say is the caller's rule)."""
    if not isinstance(value, str):
        raise InvalidValue((param,), f"must be a string, got {shown(value)}")
    return value


def refs(param: str, values: Sequence[Any]) -> list[str]:
    """At least one instance reference (an id or a name), each a string."""
    if not values:
        raise InvalidValue((param,), "names no instance", "give at least one id or name")
    return [text(param, value) for value in values]


def model_key(name: Any, param: str = "model") -> str:
    """A model name as the fleet compares it (`llama3.2` -> `llama3.2:latest`), for a look-up: only
    its type is checked, since a server's own names (which may hold anything) are looked up too."""
    if not isinstance(name, str):
        raise InvalidValue((param,), f"must be a model name (a string), got {shown(name)}")
    return normalise_model(name)


def model(name: Any, param: str = "model") -> str:
    """A model name to ask a server for, as the fleet compares it: `model_key`, refused when blank
    or holding spaces or control characters."""
    key = model_key(name, param)
    if not name.strip():
        raise InvalidValue((param,), f"is blank, got {name!r}", "give a model such as llama3.2 or qwen3:4b")
    if any(not ch.isprintable() or ch.isspace() for ch in name.strip()):
        raise InvalidValue((param,), f"{name!r} holds spaces or control characters", "e.g. llama3.2 or qwen3:4b")
    return key


def models(names: Sequence[Any], param: str = "models", lookup: bool = False) -> list[str]:
    """Each of `names` by `model`, or by `model_key` for a `lookup`."""
    if isinstance(names, str):
        raise InvalidValue((param,), f"must be a list of model names, got {shown(names)}")
    return [(model_key if lookup else model)(name, param) for name in names]


def command(param: str, value: Any) -> list[str]:
    """A program and its arguments: a non-empty list of strings (a string alone would be split into
    characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise InvalidValue((param,), f"must be a non-empty list of strings, got {shown(value)}",
                           "e.g. [\"curl\", \"-s\", \"http://...\"]")
    return [text(param, part) for part in value]


def flag(param: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue((param,), f"must be True or False, got {shown(value)}")
    return value


def fields(record: Any, given: Mapping[str, Any], problem: str = "is not a parameter here",
           verb: str = "use") -> dict[str, Any]:
    """`given` (keyword arguments), when each of its names is a field of `record` (a dataclass, or
    the TypedDict of the keywords a method takes); else an InvalidValue naming the others
    (`problem`) and listing the fields (`verb` them)."""
    known = list(getattr(record, "__dataclass_fields__", None) or record.__annotations__)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InvalidValue(tuple(unknown), problem, f"{verb} {', '.join(known)}")
    return dict(given)


def request(param: str, value: Any, record: Any) -> Any:
    """`value` if it is a `record` (a request dataclass such as GenerateRequest) whose fields hold what
    their types say: True or False for a bool, a string for a str, a dict for a dict, a Timeouts
    for a Timeouts (None where allowed). Numbers are left to settings.checked, `Any` to the server."""
    import dataclasses
    import typing

    if not isinstance(value, record):
        raise InvalidValue((param,), f"must be a {record.__name__}, got {shown(value)}")
    hints = typing.get_type_hints(record)
    for field in dataclasses.fields(record):
        given = getattr(value, field.name)
        kinds = [typing.get_origin(kind) or kind for kind in typing.get_args(hints[field.name]) or
                 (hints[field.name],)]
        if given is None and type(None) in kinds or any(kind in (typing.Any, int, float) for kind in kinds):
            continue
        if bool in kinds:
            flag(field.name, given)
        elif str in kinds:
            text(field.name, given)
        elif not isinstance(given, tuple(kinds)):
            wanted = " or ".join(kind.__name__ for kind in kinds if kind is not type(None))
            raise InvalidValue((field.name,), f"must be a {wanted}, got {shown(given)}")
    return value
